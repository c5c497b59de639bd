"""The API's own defences: non-ASCII tokens, credentials in git URLs, local remotes
only under ``local_remote_roots`` (registration and again before cloning)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from mao.api.app import create_app
from mao.config import Settings
from mao.datasets import DatasetManager, Git
from mao.errors import InvalidInput

TOKEN = "an-api-token-of-some-length"


@pytest.fixture
def default_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default: local remotes only under <data_dir>/repos (tests otherwise allow their tmp dirs)."""
    monkeypatch.delenv("MAO_LOCAL_REMOTE_ROOTS", raising=False)


@pytest.fixture
def api(data_dir: Path, default_roots: None) -> Iterator[TestClient]:
    settings = Settings(instance_name="sec-node", data_dir=data_dir)
    assert settings.local_remote_roots == [data_dir / "repos"]
    with TestClient(create_app(settings, background=False)) as client:
        yield client


def _bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=ground-truth", str(path)], check=True)
    return path


# ------------------------------------------------------------------ tokens


@pytest.mark.parametrize(
    "value", [b"Bearer \xc3\xa9t\xc3\xa9", b"Bearer \xff\xfe\xfd", "Bearer токен".encode(), b"\xe2\x82\xac"]
)
def test_non_ascii_token_is_a_401_not_a_500(data_dir: Path, value: bytes) -> None:
    settings = Settings(instance_name="sec-node", data_dir=data_dir, api_token=TOKEN)
    with TestClient(create_app(settings, background=False), raise_server_exceptions=False) as client:
        for name in (b"authorization", b"x-mao-token"):
            response = client.get("/registry/tools", headers=[(name, value)])
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "unauthorized"
        assert client.get("/registry/tools", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


# ------------------------------------------------------------------ credentials in URLs


@pytest.mark.parametrize(
    "url",
    [
        "https://user:ghp_secret123@github.com/x/y.git",
        "http://:s3cr3tv4lue@example.org/x.git",
        "ssh://git:pw@example.org/x.git",
        "https://oauth2:glpat-abc@gitlab.example.org/g/r.git",
    ],
)
def test_credentials_in_a_dataset_url_are_refused_and_never_stored(api: TestClient, url: str) -> None:
    response = api.post("/registry/datasets", json={"name": "leaky", "body": {"master": url}})
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "SSH key" in message and "credential helper" in message
    secret = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert secret not in response.text
    listed = api.get("/registry/datasets")
    assert listed.json() == {} and secret not in listed.text
    tool = api.post("/registry/tools", json={"name": "t", "image": "busybox", "data_repo": url})
    assert tool.status_code == 400 and secret not in tool.text


@pytest.mark.parametrize(
    "url",
    [
        "ssh://git@example.org/x.git",
        "https://example.org/x.git",
        "git@example.org:x/y.git",
        "https://user@example.org/x.git",
    ],
)
def test_urls_without_a_secret_are_fine(api: TestClient, url: str) -> None:
    response = api.post("/registry/datasets", json={"name": "ok", "body": {"master": url}})
    assert response.status_code == 200, response.text
    assert api.get("/registry/datasets").json()["ok"]["master"] == url


# ------------------------------------------------------------------ local remotes


def test_local_remote_outside_the_roots_is_refused(api: TestClient, tmp_path: Path, data_dir: Path) -> None:
    private = _bare(tmp_path / "private.git")
    for url in (
        str(private),
        f"file://{private}",
        f"{data_dir}/repos/../../private.git".replace("/..", "/x/.."),
        "/etc/cron.d",
        "file:///root/.ssh",
    ):
        response = api.post("/registry/datasets", json={"name": "steal", "body": {"master": url}})
        assert response.status_code == 400, (url, response.text)
        error = response.json()["error"]
        if "local_remote_roots" in error.get("details", {}):
            assert error["details"]["local_remote_roots"] == [str((data_dir / "repos").resolve())]
            assert str(data_dir / "repos") in error["message"] and "local_remote_roots" in error["message"]
    assert api.get("/registry/datasets").json() == {}


def test_symlink_out_of_the_roots_is_refused(api: TestClient, tmp_path: Path, data_dir: Path) -> None:
    private = _bare(tmp_path / "private.git")
    (data_dir / "repos").mkdir(parents=True)
    (data_dir / "repos" / "link.git").symlink_to(private)
    response = api.post(
        "/registry/datasets", json={"name": "steal", "body": {"master": str(data_dir / "repos" / "link.git")}}
    )
    assert response.status_code == 400 and "local_remote_roots" in response.text


def test_local_repositories_of_the_instance_are_fine(api: TestClient, data_dir: Path) -> None:
    created = api.post("/bare-repo/init", json={"name": "obs", "register": True})
    assert created.status_code == 200, created.text
    assert api.get("/registry/datasets/obs").json()["master"] == str(data_dir / "repos" / "obs.git")
    _bare(data_dir / "repos" / "other.git")
    for name, url in (
        ("other", str(data_dir / "repos" / "other.git")),
        ("other-url", f"file://{data_dir}/repos/other.git"),
    ):
        assert api.post("/registry/datasets", json={"name": name, "body": {"master": url}}).status_code == 200


def test_configured_roots_are_allowed(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    _bare(shared / "ds.git")
    monkeypatch.setenv("MAO_LOCAL_REMOTE_ROOTS", f"{shared}, {tmp_path / 'more'}")
    settings = Settings(instance_name="sec-node", data_dir=data_dir)
    assert settings.local_remote_roots == [shared, tmp_path / "more"]
    with TestClient(create_app(settings, background=False)) as client:
        ok = client.post("/registry/datasets", json={"name": "ds", "body": {"master": str(shared / "ds.git")}})
        assert ok.status_code == 200
        refused = client.post(
            "/registry/datasets", json={"name": "r", "body": {"master": str(data_dir / "repos" / "x.git")}}
        )
        assert refused.status_code == 400


def test_clone_checks_the_roots_again(tmp_path: Path) -> None:
    """A dataset registered elsewhere (another member, an older version) is checked before cloning."""
    private = _bare(tmp_path / "private.git")
    roots = [tmp_path / "data" / "repos"]
    manager = DatasetManager(
        Git(ssh_key_dir=None, name="t", email="t@x"),
        tmp_path / "data" / "datasets",
        roots[0],
        push_retries=0,
        local_remote_roots=roots,
    )
    for url in (str(private), f"file://{private}"):
        with pytest.raises(InvalidInput, match="local_remote_roots"):
            manager.ensure_clone("ds", url)
    assert not manager.clone_path("ds").exists()
    inside = _bare(roots[0] / "ds.git")
    assert (manager.ensure_clone("ds", str(inside)) / ".git").is_dir()


def test_the_instance_confines_its_dataset_manager(data_dir: Path, default_roots: None) -> None:
    from mao.instance import Instance

    instance = Instance(Settings(instance_name="n", data_dir=data_dir))
    try:
        assert instance.datasets.local_remote_roots == [data_dir / "repos"]
        assert instance.catalog.local_remote_roots == [data_dir / "repos"]
    finally:
        instance.close()


def test_maoctl_dataset_add_outside_the_roots_is_one_line(
    maoctl, data_dir: Path, tmp_path: Path, free_port, default_roots: None
) -> None:
    from served_kit import Served

    settings = Settings(instance_name="sec-node", data_dir=data_dir, api_port=free_port())
    with Served.api(settings) as server:
        result = maoctl("--url", server.url, "dataset", "add", "--name", "x", "--git-url", str(tmp_path / "p.git"))
        assert result.code == 1 and len(result.err.strip().splitlines()) == 1
        assert "local_remote_roots" in result.err and str(data_dir / "repos") in result.err
        leaky = maoctl("--url", server.url, "dataset", "add", "--name", "y", "--git-url", "https://u:hunter2@h/x.git")
        assert leaky.code == 1 and "hunter2" not in leaky.err and "credential helper" in leaky.err
        assert httpx.get(server.url + "/registry/datasets").json() == {}
