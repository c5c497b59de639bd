"""The one trailer reader and writer: messages written by ``format_message`` (or by hand) and
read back from real commits through git's own trailer parsing."""

from __future__ import annotations

from pathlib import Path

from mao.datasets import Git
from mao.datasets.trailers import LogFormat, format_message


def test_messages_written_here_and_by_hand_read_back_as_dicts(tmp_path: Path, inspect) -> None:
    repo = tmp_path / "repo"
    inspect.git("init", "--quiet", str(repo))

    def _commit(message: str) -> str:
        (tmp_path / "message").write_text(message)
        inspect.git(
            "commit", "--quiet", "--allow-empty", "--cleanup=verbatim", f"--file={tmp_path / 'message'}", cwd=repo
        )
        return inspect.git("rev-parse", "HEAD", cwd=repo).strip()

    written = format_message(
        "Output\n\nWhat the step did: a body line, not a trailer.", {"Mao-Run": "3", "Mao-Slot": "x: y"}
    )
    first = _commit(written)
    by_hand = "Merge\n\nSigned-off-by: a <a@b>\nMao-Superseded: a.csv,\n b.csv\nMao-Run: 4\n"
    second = _commit(by_hand)
    third = _commit("No trailers at all\n")

    log = LogFormat("%H", "%s")
    out = Git(ssh_key_dir=None, name="t", email="t@example.org").run(["log", "-z", log.option], repo)
    assert log.parse(out) == [
        ([third, "No trailers at all"], {}),
        (
            [second, "Merge"],
            {"Signed-off-by": "a <a@b>", "Mao-Superseded": "a.csv, b.csv", "Mao-Run": "4"},
        ),
        ([first, "Output"], {"Mao-Run": "3", "Mao-Slot": "x: y"}),
    ]
