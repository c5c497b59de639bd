"""``POST /registry/tools`` registers a tool whose image this instance's engine lacks and cannot
pull, with a warning in the answer; no warning when the image is there or no engine is seen."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from mao.api.app import create_app
from mao.config import Settings


def test_an_image_the_engine_lacks_is_registered_with_a_warning(fake_client: TestClient) -> None:
    response = fake_client.post("/registry/tools", json={"name": "elsewhere", "image": "img/absent"})
    assert response.status_code == 200, response.text
    warning = response.json()["warning"]
    assert "'img/absent' is not on the container engine" in warning and "could not be pulled" in warning
    assert "other instances" in warning
    assert fake_client.get("/registry/tools/elsewhere").json()["image"] == "img/absent"


def test_an_image_the_engine_has_gets_no_warning(fake_client: TestClient) -> None:
    response = fake_client.post("/registry/tools", json={"name": "here", "image": "img/ok"})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"ok", "name", "tool"}


def test_no_engine_to_be_seen_no_warning(make_client, tmp_path) -> None:
    client = make_client(docker_host=f"unix://{tmp_path}/no-engine.sock")
    response = client.post("/registry/tools", json={"name": "t", "image": "mao/anything:1"})
    assert response.status_code == 200, response.text
    assert "warning" not in response.json()


@pytest.mark.skipif(not os.environ.get("MAO_TEST_DOCKER_HOST"), reason="MAO_TEST_DOCKER_HOST is not set")
def test_a_real_engine_that_cannot_pull_the_image(data_dir) -> None:
    settings = Settings(instance_name="test-node", data_dir=data_dir, docker_host=os.environ["MAO_TEST_DOCKER_HOST"])
    with TestClient(create_app(settings, background=False)) as client:
        absent = client.post("/registry/tools", json={"name": "absent", "image": "mao-test/never-built:0.0.1"})
        assert absent.status_code == 200, absent.text
        assert "could not be pulled" in absent.json()["warning"]
        local = os.environ.get("MAO_TEST_IMAGE") or "mao/busybox:local"
        present = client.post("/registry/tools", json={"name": "present", "image": local})
        assert present.status_code == 200 and "warning" not in present.json()
