"""FakeExecutor: the in-memory stand-in other parts are tested with."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mao.executor.base import StepSpec
from mao.executor.fake import FakeExecutor


def spec(tmp_path: Path, image: str = "tool", **fields) -> StepSpec:
    values = {"run_id": 1, "pipeline": "p", "step": "s", "image": image, "output_dir": tmp_path / "out"}
    values.update(fields)
    return StepSpec(**values)


def test_tool_reads_input_writes_output_and_logs(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "n.txt").write_text("41")

    def tool(s: StepSpec, log) -> int:
        n = int((s.input_dir / "n.txt").read_text())
        (s.output_dir / "n.txt").write_text(str(n + 1))
        log(f"wrote {n + 1}")
        return 0

    executor = FakeExecutor({"tool": tool})
    lines: list[str] = []
    the_spec = spec(tmp_path, input_dir=tmp_path / "in")
    result = executor.run(the_spec, lines.append)
    assert result.status == "succeeded" and result.exit_code == 0
    assert result.image_digest == "sha256:fake-tool"
    assert (tmp_path / "out" / "n.txt").read_text() == "42"
    assert lines == ["wrote 42"]
    assert executor.calls == [the_spec]


def test_unknown_image_fails(tmp_path: Path) -> None:
    result = FakeExecutor().run(spec(tmp_path, image="nope"), lambda line: None)
    assert result.status == "failed"
    assert result.error == "image 'nope' not found: no such fake tool"


def test_non_zero_exit_and_crash(tmp_path: Path) -> None:
    def crash(s, log):
        raise ValueError("bad input")

    executor = FakeExecutor({"three": lambda s, log: 3, "crash": crash})
    three = executor.run(spec(tmp_path, image="three"), lambda line: None)
    assert (three.status, three.exit_code, three.error) == ("failed", 3, "exit code 3")
    crashed = executor.run(spec(tmp_path, image="crash"), lambda line: None)
    assert crashed.status == "failed" and "bad input" in crashed.error


def test_timeout(tmp_path: Path) -> None:
    executor = FakeExecutor({"slow": lambda s, log: time.sleep(5) or 0})
    started = time.monotonic()
    result = executor.run(spec(tmp_path, image="slow", timeout=0.2), lambda line: None)
    assert result.status == "timed_out"
    assert time.monotonic() - started < 2


def test_cancel(tmp_path: Path) -> None:
    started = threading.Event()

    def tool(s, log):
        started.set()
        time.sleep(5)
        return 0

    cancel = threading.Event()
    executor = FakeExecutor({"tool": tool})
    threading.Thread(target=lambda: started.wait(5) and cancel.set()).start()
    result = executor.run(spec(tmp_path), lambda line: None, cancel)
    assert result.status == "cancelled"


def test_remove_run_containers_stops_running_steps(tmp_path: Path) -> None:
    started = threading.Event()

    def tool(s, log):
        started.set()
        time.sleep(5)
        return 0

    executor = FakeExecutor({"tool": tool})
    results = []
    worker = threading.Thread(target=lambda: results.append(executor.run(spec(tmp_path, run_id=7), print)))
    worker.start()
    assert started.wait(5)
    assert executor.remove_run_containers(8) == 0
    assert executor.remove_run_containers(7) == 1
    worker.join(5)
    assert results[0].status == "cancelled"
    assert executor.remove_run_containers() == 0


def test_secrets_masked_and_late_lines_dropped(tmp_path: Path) -> None:
    timed_out, logged_late = threading.Event(), threading.Event()

    def tool(s, log):
        log("token=abc123")
        timed_out.wait(10)  # still going when its timeout has been reported
        log("after the timeout")
        logged_late.set()
        return 0

    lines: list[str] = []
    executor = FakeExecutor({"tool": tool})
    result = executor.run(spec(tmp_path, secret_values=["abc123"], timeout=0.1), lines.append)
    assert result.status == "timed_out"
    timed_out.set()
    assert logged_late.wait(10)
    assert lines == ["token=***"]


def test_docker_socket_refused_unless_allowed(tmp_path: Path) -> None:
    tools = {"tool": lambda s, log: 0}
    refused = FakeExecutor(tools).run(spec(tmp_path, docker_socket=True), print)
    assert refused.status == "failed" and "allow_docker_socket" in refused.error
    assert (
        FakeExecutor(tools, allow_docker_socket=True).run(spec(tmp_path, docker_socket=True), print).status
        == "succeeded"
    )


@pytest.mark.parametrize("preset", [True, False])
def test_ping_close_and_cancel_before_start(tmp_path: Path, preset: bool) -> None:
    executor = FakeExecutor({"tool": lambda s, log: 0})
    assert executor.ping()["engine"] == "fake"
    cancel = threading.Event()
    if preset:
        cancel.set()
    result = executor.run(spec(tmp_path), print, cancel)
    assert result.status == ("cancelled" if preset else "succeeded")
    executor.close()
    assert executor.closed
