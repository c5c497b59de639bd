"""Lines assembled from a container's output stream: bounded while they are read, cut with
their full size noted, and never cut inside a secret or a character."""

from __future__ import annotations

import tracemalloc

from mao.executor.docker import _LineSplitter
from mao.untrusted import MAX_LOG_LINE_BYTES

EIGHT_MIB = 8 * 1024 * 1024


def split(chunks: list[bytes], secrets: list[str] | None = None, limit: int = MAX_LOG_LINE_BYTES) -> list[str]:
    lines: list[str] = []
    splitter = _LineSplitter(lines.append, secrets or [], limit)
    for chunk in chunks:
        splitter.feed(chunk)
    splitter.close()
    return lines


def test_an_8_mib_line_is_cut_to_the_limit_with_its_size() -> None:
    chunk = b"x" * 65536
    lines = split([chunk] * (EIGHT_MIB // len(chunk)) + [b"\nnext line\n"])
    assert lines[1:] == ["next line"]
    note = f"… [truncated: {EIGHT_MIB} bytes in total]"
    assert lines[0] == "x" * (MAX_LOG_LINE_BYTES - len(note.encode())) + note


def test_memory_stays_bounded_while_a_long_line_is_read() -> None:
    lines: list[str] = []
    splitter = _LineSplitter(lines.append, [])
    chunk = b"y" * 65536
    tracemalloc.start()
    try:
        for _ in range(EIGHT_MIB // len(chunk)):
            splitter.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_LOG_LINE_BYTES  # the chunk in hand and the kept part, not 8 MiB
    splitter.close()
    assert lines[0].endswith(f"[truncated: {EIGHT_MIB} bytes in total]")


def test_short_lines_pass_whole_across_chunks() -> None:
    assert split([b"one\r\ntw", b"o\nthr", b"ee"]) == ["one", "two", "three"]
    assert split(["é€".encode()[:3], "é€".encode()[3:] + b"\n"]) == ["é€"]


def test_a_line_cut_inside_a_secret_shows_none_of_it() -> None:
    secret = "s3cr3t-t0ken-value"
    shown = (secret + " ") * 4  # masked to "*** " each: the text that follows moves 60 characters up
    for offset in range(len(secret) + 1):  # the cut falls at every place in or around the last secret
        line = (shown + "a" * (200 - len(shown) - offset) + secret + "b" * 200 + "\n").encode()
        [out] = split([line], [secret], limit=200)
        assert out.startswith("*** " * 4)
        assert "s3" not in out, (offset, out)  # not a piece of it: "s3" begins the secret
        assert out.endswith(f"[truncated: {len(line) - 1} bytes in total]")


def test_a_line_cut_inside_a_character_loses_only_that_character() -> None:
    note = "… [truncated: 189 bytes in total]"  # 36 bytes: 64 of the line are kept
    [out] = split([b"a" * 63 + "€".encode() * 42 + b"\n"], limit=100)
    assert out == "a" * 63 + note


class _ExitedContainer:
    """A container whose followed stream is Podman's error for a process already gone."""

    short_id = "c0ffee"

    def logs(self, *, stream: bool, follow: bool, stdout: bool, stderr: bool):
        if follow:
            return iter(
                [
                    b':"no such process","message":"failed to obtain logs for Container \'c0ffee\': '
                    b'open /proc/1/cgroup: no such process","response":500}'
                ]
            )
        return iter([b"token=s3cr3t\n"])


def test_an_engine_error_in_the_stream_is_no_output_and_the_stored_log_is_read() -> None:
    import time

    from mao.executor.docker import _LogPump

    lines: list[str] = []
    pump = _LogPump(_ExitedContainer(), "stdout", lines.append, ["s3cr3t"])
    pump.thread.start()
    pump.finish(time.monotonic() + 5)
    assert lines == ["token=***"]
