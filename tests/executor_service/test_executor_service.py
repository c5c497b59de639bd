"""The executor service and its client: the service app around a FakeExecutor, served by a
real uvicorn server in a thread, driven through RemoteExecutor over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from served_kit import Served
from waiting import wait_for

from mao.errors import ExecutorError, MAOError
from mao.executor.base import StepSpec
from mao.executor.fake import FakeExecutor
from mao.executor.remote import RemoteExecutor
from mao.executor.service import StepLimits, create_executor_app

TOKEN = "s3cret-token"


class ServiceThread(Served):
    """The executor service around ``executor`` on a free loopback port, in a thread of this process."""

    def __init__(self, executor: FakeExecutor, token: str, data_root: Path, **kw: Any) -> None:
        self.executor = executor
        super().__init__(create_executor_app(executor, token=token, data_root=data_root, **kw), name="executor-service")


# ----------------------------------------------------------------- fake tools


def talk(spec: StepSpec, log) -> int:
    count = int(spec.env.get("LINES", "5"))
    for i in range(1, count + 1):
        log(f"line {i}")
    (spec.output_dir / "out.txt").write_text("done\n")
    return 0


def fail(spec: StepSpec, log) -> int:
    log("something went wrong")
    return 3


def slow(spec: StepSpec, log) -> int:
    for i in range(100):  # about 5 s; a cancelled or timed-out fake tool just runs out
        log(f"tick {i}")
        time.sleep(0.05)
    return 0


def leak(spec: StepSpec, log) -> int:
    log(f"the token is {spec.env['TOKEN']} and again {spec.env['TOKEN']}")
    return 0


def fake_executor() -> FakeExecutor:
    return FakeExecutor({"img/talk": talk, "img/fail": fail, "img/slow": slow, "img/leak": leak})


authed = httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"})
"""Plain HTTP calls that carry the service's token."""


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ServiceThread]]:
    started: list[ServiceThread] = []

    def start(token: str = TOKEN, data_root: Path = tmp_path, **kw: object) -> ServiceThread:
        kw.setdefault("limits", StepLimits(stop_grace=2.0))
        service = ServiceThread(fake_executor(), token, data_root, **kw).start()
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        service.stop()


@pytest.fixture
def service(start_service) -> ServiceThread:
    return start_service()


@pytest.fixture
def remote(service: ServiceThread) -> Iterator[RemoteExecutor]:
    executor = RemoteExecutor.from_url(service.url, token=TOKEN, poll_interval=0.05)
    yield executor
    executor.close()


def make_spec(tmp_path: Path, image: str = "img/talk", **fields) -> StepSpec:
    values = {
        "run_id": 1,
        "pipeline": "p",
        "step": "s",
        "image": image,
        "output_dir": tmp_path / "out",
        "instance": "node-a",
    }
    values.update(fields)
    return StepSpec(**values)


def assert_error_shape(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False
    assert set(body["error"]) <= {"code", "message", "details"}
    assert body["error"]["code"] and body["error"]["message"]
    return body["error"]


# ----------------------------------------------------------------- results


def test_success_passes_log_lines_in_order(remote: RemoteExecutor, service: ServiceThread, tmp_path: Path) -> None:
    lines: list[str] = []
    result = remote.run(make_spec(tmp_path, env={"LINES": "2500"}), lines.append)
    assert result.status == "succeeded", result.error
    assert result.exit_code == 0
    assert result.image_digest == "sha256:fake-img/talk"
    assert result.container_id and result.container_id.startswith("fake-")
    assert lines == [f"line {i}" for i in range(1, 2501)]
    assert (tmp_path / "out" / "out.txt").read_text() == "done\n"
    # the service got the spec as sent, paths and all
    (call,) = service.executor.calls
    assert call.output_dir == tmp_path / "out" and call.env == {"LINES": "2500"} and call.instance == "node-a"
    # the client forgot the finished step on the service
    assert authed.get(service.url + "/steps").json() == {"steps": []}


def test_failure(remote: RemoteExecutor, tmp_path: Path) -> None:
    lines: list[str] = []
    result = remote.run(make_spec(tmp_path, image="img/fail"), lines.append)
    assert (result.status, result.exit_code, result.error) == ("failed", 3, "exit code 3")
    assert lines == ["something went wrong"]


def test_unknown_image_and_refused_socket(remote: RemoteExecutor, tmp_path: Path) -> None:
    missing = remote.run(make_spec(tmp_path, image="img/none"), lambda line: None)
    assert missing.status == "failed" and "img/none" in missing.error
    socket_step = remote.run(make_spec(tmp_path, docker_socket=True), lambda line: None)
    assert socket_step.status == "failed" and "Docker socket" in socket_step.error


def test_timeout(remote: RemoteExecutor, tmp_path: Path) -> None:
    started = time.monotonic()
    result = remote.run(make_spec(tmp_path, image="img/slow", timeout=0.3), lambda line: None)
    assert result.status == "timed_out"
    assert result.error == "timed out after 0.3 s"
    assert time.monotonic() - started < 3


def test_cancel(remote: RemoteExecutor, tmp_path: Path) -> None:
    cancel = threading.Event()
    lines: list[str] = []

    def on_log(line: str) -> None:
        lines.append(line)
        if line == "tick 2":
            cancel.set()

    started = time.monotonic()
    result = remote.run(make_spec(tmp_path, image="img/slow"), on_log, cancel)
    assert result.status == "cancelled", result.error
    assert time.monotonic() - started < 3
    assert lines[:3] == ["tick 0", "tick 1", "tick 2"]


def test_cancelled_before_start_sends_nothing(remote: RemoteExecutor, service: ServiceThread, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    result = remote.run(make_spec(tmp_path), lambda line: None, cancel)
    assert result.status == "cancelled"
    assert service.executor.calls == []


def test_secret_masking_is_preserved(remote: RemoteExecutor, tmp_path: Path) -> None:
    lines: list[str] = []
    result = remote.run(
        make_spec(tmp_path, image="img/leak", env={"TOKEN": "hunter2"}, secret_values=["hunter2"]), lines.append
    )
    assert result.status == "succeeded"
    assert lines == ["the token is *** and again ***"]


def test_remove_run_containers_stops_that_runs_steps(remote: RemoteExecutor, tmp_path: Path) -> None:
    results = {}
    ticking: set[int] = set()
    threads = [
        threading.Thread(
            target=lambda r=run_id: results.update(
                {r: remote.run(make_spec(tmp_path / str(r), image="img/slow", run_id=r), lambda line: ticking.add(r))}
            )
        )
        for run_id in (7, 8)
    ]
    for t in threads:
        t.start()
    wait_for(lambda: ticking == {7, 8}, 10, "both runs' steps to log")
    assert remote.remove_run_containers(7) == 1
    threads[0].join(5)
    assert results[7].status == "cancelled"
    assert 8 not in results  # the other run goes on
    assert remote.remove_run_containers(None) == 1
    threads[1].join(5)
    assert results[8].status == "cancelled"


def test_ping(remote: RemoteExecutor, service: ServiceThread) -> None:
    assert remote.ping() == {"engine": "fake", "version": "0", "url": service.url}


# ----------------------------------------------------------------- unreachable


def test_unreachable_service_is_a_failed_step(tmp_path: Path, free_port) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    remote = RemoteExecutor.from_url(url, timeout=2)
    try:
        result = remote.run(make_spec(tmp_path), lambda line: None)
        assert result.status == "failed"
        assert url in result.error and "cannot reach" in result.error
        with pytest.raises(ExecutorError) as info:
            remote.ping()
        assert url in info.value.message
        with pytest.raises(ExecutorError, match="cannot reach the executor service"):
            remote.remove_run_containers(1)
    finally:
        remote.close()


def test_service_lost_while_polling_fails_after_the_grace(start_service, tmp_path: Path) -> None:
    service = start_service()
    remote = RemoteExecutor.from_url(service.url, token=TOKEN, poll_interval=0.05, grace=0.5, timeout=2)
    lines: list[str] = []

    def on_log(line: str) -> None:
        lines.append(line)
        if line == "tick 1":
            threading.Thread(target=service.stop, daemon=True).start()

    try:
        result = remote.run(make_spec(tmp_path, image="img/slow"), on_log)
    finally:
        remote.close()
    assert result.status == "failed"
    assert f"lost contact with the executor service at {service.url}" in result.error
    assert lines[:2] == ["tick 0", "tick 1"]


def test_invalid_url() -> None:
    with pytest.raises(ExecutorError, match="invalid executor URL"):
        RemoteExecutor.from_url("127.0.0.1:8081")


# ----------------------------------------------------------------- token


def test_token_required(start_service, tmp_path: Path) -> None:
    service = start_service(token=TOKEN)
    assert httpx.get(service.url + "/health").status_code == 200  # health needs no token
    for method, path in (
        ("GET", "/steps"),
        ("POST", "/steps"),
        ("GET", "/steps/x"),
        ("GET", "/steps/x/logs"),
        ("POST", "/steps/x/cancel"),
        ("DELETE", "/steps/x"),
        ("POST", "/containers/remove"),
    ):
        error = assert_error_shape(httpx.request(method, service.url + path), 401)
        assert error["code"] == "unauthorized"
    wrong = httpx.get(service.url + "/steps", headers={"Authorization": "Bearer nope"})
    assert_error_shape(wrong, 401)

    anonymous = RemoteExecutor.from_url(service.url)
    try:
        result = anonymous.run(make_spec(tmp_path), lambda line: None)
    finally:
        anonymous.close()
    assert result.status == "failed"
    assert "needs a token" in result.error and "401" in result.error and service.url in result.error
    assert service.executor.calls == []

    remote = RemoteExecutor.from_url(service.url, token=TOKEN, poll_interval=0.05)
    try:
        lines: list[str] = []
        assert remote.run(make_spec(tmp_path), lines.append).status == "succeeded"
        assert lines == [f"line {i}" for i in range(1, 6)]
        assert remote.remove_run_containers(1) == 0
    finally:
        remote.close()


# ----------------------------------------------------------------- the HTTP API itself


def _wait_finished(url: str, step_id: str) -> dict:
    return wait_for(
        lambda: (body := authed.get(f"{url}/steps/{step_id}").json())["status"] != "running" and body,
        10,
        f"step {step_id} to finish",
        0.02,
    )


def test_step_lifecycle_over_http(service: ServiceThread, tmp_path: Path) -> None:
    body = {"run_id": 3, "pipeline": "p", "step": "s", "image": "img/slow", "output_dir": str(tmp_path / "out")}
    response = authed.post(service.url + "/steps", json=body)
    assert response.status_code == 202, response.text
    step_id = response.json()["id"]
    status = authed.get(f"{service.url}/steps/{step_id}").json()
    assert status["status"] == "running" and status["run_id"] == 3 and status["step"] == "s"
    assert_error_shape(authed.delete(f"{service.url}/steps/{step_id}"), 409)

    cancelled = authed.post(f"{service.url}/steps/{step_id}/cancel")
    assert cancelled.status_code == 200
    final = _wait_finished(service.url, step_id)
    assert final["status"] == "cancelled" and final["exit_code"] == 137 and final["error"] == "cancelled"
    logs = authed.get(f"{service.url}/steps/{step_id}/logs", params={"after": 0}).json()
    assert logs["done"] is True
    assert [n for n, _ in logs["lines"]] == list(range(1, len(logs["lines"]) + 1))
    assert logs["lines"][0] == [1, "tick 0"]
    partial = authed.get(f"{service.url}/steps/{step_id}/logs", params={"after": 0, "limit": 1}).json()
    assert partial == {"lines": [[1, "tick 0"]], "done": len(logs["lines"]) == 1}

    assert authed.delete(f"{service.url}/steps/{step_id}").json() == {"ok": True}
    error = assert_error_shape(authed.get(f"{service.url}/steps/{step_id}"), 404)
    assert error["code"] == "not_found"


def test_paths_must_be_absolute(remote: RemoteExecutor, service: ServiceThread, tmp_path: Path) -> None:
    body = {"run_id": 1, "pipeline": "p", "step": "s", "image": "img/talk", "output_dir": "relative/out"}
    error = assert_error_shape(authed.post(service.url + "/steps", json=body), 400)
    assert error["code"] == "invalid_input" and "absolute" in error["message"]
    body.update(output_dir=str(tmp_path / "out"), input_dir="in")
    assert "absolute" in assert_error_shape(authed.post(service.url + "/steps", json=body), 400)["message"]
    body.update(output_dir="/tmp/../etc", input_dir=None)
    assert "'..'" in assert_error_shape(authed.post(service.url + "/steps", json=body), 400)["message"]
    result = remote.run(
        StepSpec(run_id=1, pipeline="p", step="s", image="img/talk", output_dir=Path("out")), lambda line: None
    )
    assert result.status == "failed" and "absolute" in result.error and service.url in result.error
    assert service.executor.calls == []


def test_bad_names_and_fields_are_refused(service: ServiceThread, tmp_path: Path) -> None:
    base = {"run_id": 1, "pipeline": "p", "step": "s", "image": "img/talk", "output_dir": str(tmp_path / "out")}
    for change in (
        {"step": "../x"},
        {"pipeline": "a b"},
        {"instance": "x;y"},
        {"timeout": 0},
        {"pull_policy": "sometimes"},
        {"surprise": 1},
    ):
        error = assert_error_shape(authed.post(service.url + "/steps", json={**base, **change}), 400)
        [field] = change
        assert field in error["message"] or field in str(error.get("details")), (change, error)
    assert service.executor.calls == []  # nothing reached the engine


def test_only_paths_under_the_data_root_are_mounted(start_service, tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "datasets" / "d").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (root / "datasets" / "link").symlink_to(outside)
    service = start_service(data_root=root)
    base = {"run_id": 1, "pipeline": "p", "step": "s", "image": "img/talk"}
    for fields in (
        {"output_dir": "/root/.ssh"},
        {"output_dir": "/etc/cron.d"},
        {"output_dir": str(root / "datasets" / "link")},
        {"output_dir": str(root / "datasets" / "link" / "sub")},
        {"output_dir": str(root / "datasets" / "d"), "input_dir": "/root/.ssh"},
        {"output_dir": str(tmp_path / "data-other")},
    ):
        error = assert_error_shape(authed.post(service.url + "/steps", json=base | fields), 400)
        assert str(root) in error["message"] and "data root" in error["message"], error
    assert service.executor.calls == []
    accepted = authed.post(service.url + "/steps", json=base | {"output_dir": str(root / "datasets" / "d")})
    assert accepted.status_code == 202
    assert _wait_finished(service.url, accepted.json()["id"])["status"] == "succeeded"
    assert (root / "datasets" / "d" / "out.txt").read_text() == "done\n"


def test_the_service_cannot_be_built_without_a_token(tmp_path: Path) -> None:
    for token in ("", "   "):
        with pytest.raises(MAOError, match="needs a token"):
            create_executor_app(fake_executor(), token=token, data_root=tmp_path)


@pytest.mark.parametrize("header", [b"Bearer \xc3\xa9t\xc3\xa9", b"Bearer \xff\xfe", "Bearer токен".encode()])
def test_non_ascii_token_is_a_401(service: ServiceThread, header: bytes) -> None:
    for name in ("authorization", "x-mao-token"):
        value = header if name == "authorization" else header.removeprefix(b"Bearer ")
        response = httpx.get(service.url + "/steps", headers=[(name.encode(), value)])
        error = assert_error_shape(response, 401)
        assert "token" in error["message"], error
    assert authed.get(service.url + "/steps").status_code == 200  # the right token still gets in


def test_log_lines_are_bounded(start_service, tmp_path: Path) -> None:
    service = start_service(limits=StepLimits(max_log_lines=10, stop_grace=2.0))
    body = {
        "run_id": 1,
        "pipeline": "p",
        "step": "s",
        "image": "img/talk",
        "output_dir": str(tmp_path / "out"),
        "env": {"LINES": "50"},
    }
    step_id = authed.post(service.url + "/steps", json=body).json()["id"]
    assert _wait_finished(service.url, step_id)["status"] == "succeeded"
    logs = authed.get(f"{service.url}/steps/{step_id}/logs").json()
    assert logs == {"lines": [[n, f"line {n}"] for n in range(41, 51)], "done": True}
    # a client that comes late is told how many lines it missed
    remote = RemoteExecutor.from_url(service.url, token=TOKEN, poll_interval=1.0)
    try:
        lines: list[str] = []
        assert remote.run(make_spec(tmp_path, env={"LINES": "50"}), lines.append).status == "succeeded"
    finally:
        remote.close()
    assert lines == ["[40 log lines dropped by the executor service]"] + [f"line {n}" for n in range(41, 51)]


def test_finished_steps_are_forgotten_after_a_while(start_service, tmp_path: Path) -> None:
    service = start_service(limits=StepLimits(keep_finished=0.2, stop_grace=2.0))
    body = {"run_id": 1, "pipeline": "p", "step": "s", "image": "img/talk", "output_dir": str(tmp_path / "out")}
    step_id = authed.post(service.url + "/steps", json=body).json()["id"]
    assert _wait_finished(service.url, step_id)["status"] == "succeeded"
    forgotten = wait_for(
        lambda: (r := authed.get(f"{service.url}/steps/{step_id}")).status_code == 404 and r, 5, "the step forgotten"
    )
    assert_error_shape(forgotten, 404)
    assert authed.get(service.url + "/steps").json() == {"steps": []}


def test_health_reports_the_engine(service: ServiceThread) -> None:
    body = authed.get(service.url + "/health").json()
    assert body["ok"] is True and body["engine"] == "fake" and body["steps_running"] == 0


def test_health_shows_the_engine_only_with_the_token(service: ServiceThread) -> None:
    assert httpx.get(service.url + "/health").json() == {"ok": True}  # healthchecks: the status only
    wrong = httpx.get(service.url + "/health", headers={"Authorization": "Bearer not-the-token"})
    assert_error_shape(wrong, 401)


def test_health_when_the_engine_is_down(start_service) -> None:
    service = start_service()

    def down() -> dict[str, str]:
        raise ExecutorError("cannot reach the container engine at unix:///nowhere", details={"url": "unix:///nowhere"})

    service.executor.ping = down  # type: ignore[method-assign]
    error = assert_error_shape(authed.get(service.url + "/health"), 503)
    assert error["code"] == "unavailable" and "unix:///nowhere" in error["message"]
    # without the token: the status, not the reason
    bare = assert_error_shape(httpx.get(service.url + "/health"), 503)
    assert "unix:///nowhere" not in bare["message"] and "token" in bare["message"]
    remote = RemoteExecutor.from_url(service.url, token=TOKEN)
    try:
        with pytest.raises(ExecutorError, match="unhealthy.*unix:///nowhere"):
            remote.ping()
    finally:
        remote.close()


def test_shutdown_cancels_running_steps(tmp_path: Path) -> None:
    service = ServiceThread(fake_executor(), TOKEN, tmp_path, limits=StepLimits(stop_grace=5.0)).start()
    body = {"run_id": 1, "pipeline": "p", "step": "s", "image": "img/slow", "output_dir": str(tmp_path / "out")}
    step_id = authed.post(service.url + "/steps", json=body).json()["id"]
    step = service.app.state.steps.get(step_id)
    service.stop()
    assert step.result is not None and step.result.status == "cancelled"
