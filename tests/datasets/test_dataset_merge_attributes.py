"""Merge rules a dataset declares in its ``.gitattributes``: ``merge=union`` keeps both sides'
lines, ``-merge`` and ``binary`` make a file one value (the newest wins, named in
``Mao-Superseded``). The attributes that count are ground-truth's, never those a node
brings in the commit being merged."""

from __future__ import annotations

from pathlib import Path

import pytest

from mao.datasets import DatasetManager

NAME = "ds"


def _agree(manager: DatasetManager, remote: Path, write_output, files: dict[str, str]) -> str:
    """Make ``files`` (a ``.gitattributes`` among them) ground-truth's."""
    write_output(manager, str(remote), "step-a", files)
    return manager.merge_to_ground_truth(NAME, "step-a", "Agree", {})


def _race(manager: DatasetManager, other: DatasetManager, remote: Path, write_output, ours, theirs) -> str:
    """Both nodes change ground-truth at once; ``manager``'s merge goes first, ``other``'s is
    the newest. Returns the newest merge."""
    write_output(manager, str(remote), "step-a", ours, run=2)
    write_output(other, str(remote), "step-b", theirs, run=3)
    manager.merge_to_ground_truth(NAME, "step-a", "Merge a", {})
    return other.merge_to_ground_truth(NAME, "step-b", "Merge b", {})


def test_union_keeps_both_sides_changed_lines(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, trailers_of
) -> None:
    """A line both sides changed differently is a conflict by default (the newest wins); under
    ``merge=union`` both versions of it are kept, ground-truth's first, as git's union driver does."""
    _agree(manager, remote, write_output, {".gitattributes": "*.md merge=union\n", "notes.md": "a\nb\nc\n"})
    merged = _race(
        manager, other, remote, write_output, {"notes.md": "a\nb from a\nc\n"}, {"notes.md": "a\nb from b\nc\n"}
    )
    assert inspect.file(remote, "ground-truth", "notes.md") == "a\nb from a\nb from b\nc\n"
    assert trailers_of(other, remote, merged) == {}  # nothing superseded
    assert inspect.status(other.worktree_path(NAME, "ground-truth")) == ""


def test_union_keeps_both_versions_of_a_file_both_created(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, trailers_of
) -> None:
    """A ``.json`` both nodes created is not a line-oriented file by the built-in list, but a
    dataset that declares it ``merge=union`` keeps both sides' lines."""
    _agree(manager, remote, write_output, {".gitattributes": "events/*.json merge=union\n"})
    merged = _race(
        manager, other, remote, write_output, {"events/e.json": '{"from": "a"}\n'}, {"events/e.json": '{"from": "b"}\n'}
    )
    assert inspect.file(remote, "ground-truth", "events/e.json") == '{"from": "a"}\n{"from": "b"}\n'
    assert "Mao-Superseded" not in trailers_of(other, remote, merged)


@pytest.mark.parametrize("attribute", ["-merge", "binary", "merge=binary"])
def test_a_single_value_file_keeps_the_newest_even_when_rows_were_only_appended(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, trailers_of, attribute
) -> None:
    """Rows both sides appended are kept by default; a file declared ``-merge`` or ``binary``
    is never merged line by line: the newest side wins and is named."""
    _agree(manager, remote, write_output, {".gitattributes": f"state.csv {attribute}\n", "state.csv": "h\n1\n"})
    merged = _race(manager, other, remote, write_output, {"state.csv": "h\n1\na\n"}, {"state.csv": "h\n1\nb\n"})
    assert inspect.file(remote, "ground-truth", "state.csv") == "h\n1\nb\n"
    assert trailers_of(other, remote, merged) == {"Mao-Superseded": "state.csv"}
    assert not other.worktree_path(NAME, "ground-truth").exists()  # settled with no worktree


@pytest.mark.parametrize("attribute", ["-merge", "binary"])
def test_a_single_value_file_is_not_merged_line_by_line_where_git_would_merge_cleanly(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, trailers_of, attribute
) -> None:
    """Changes to different lines merge cleanly without a rule (no worktree needed); a
    single-value file takes the newest side whole instead. The other files of the merge
    still merge as usual."""
    lines = "".join(f"{n}\n" for n in range(1, 7))
    _agree(
        manager,
        remote,
        write_output,
        {".gitattributes": f"*.cfg {attribute}\n", "app.cfg": lines, "free.txt": lines},
    )
    first, last = "one\n" + lines[2:], lines[:-2] + "six\n"
    merged = _race(
        manager, other, remote, write_output, {"app.cfg": first, "free.txt": first}, {"app.cfg": last, "free.txt": last}
    )
    assert inspect.file(remote, "ground-truth", "app.cfg") == last
    assert inspect.file(remote, "ground-truth", "free.txt") == "one\n" + lines[2:-2] + "six\n"  # merged by git
    assert trailers_of(other, remote, merged) == {"Mao-Superseded": "app.cfg"}


def test_without_attributes_the_same_changes_merge_by_the_built_in_rules(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, trailers_of
) -> None:
    lines = "".join(f"{n}\n" for n in range(1, 7))
    _agree(manager, remote, write_output, {"app.cfg": lines, "state.csv": "h\n"})
    first, last = "one\n" + lines[2:], lines[:-2] + "six\n"
    merged = _race(
        manager,
        other,
        remote,
        write_output,
        {"app.cfg": first, "state.csv": "h\na\n"},
        {"app.cfg": last, "state.csv": "h\nb\n"},
    )
    assert inspect.file(remote, "ground-truth", "app.cfg") == "one\n" + lines[2:-2] + "six\n"
    assert inspect.file(remote, "ground-truth", "state.csv") == "h\na\nb\n"
    assert "Mao-Superseded" not in trailers_of(other, remote, merged)


def test_a_node_cannot_change_the_rules_of_its_own_merge(
    manager: DatasetManager, other: DatasetManager, remote: Path, write_output, inspect, trailers_of
) -> None:
    """The newest node brings a ``.gitattributes`` with its change: its merge follows
    ground-truth's rules (none: appended rows kept, a changed line superseded), and the
    node's rules count from the next merge on, once ground-truth holds them."""
    _agree(manager, remote, write_output, {"state.csv": "h\n", "notes.md": "a\nb\n"})
    rules = "state.csv -merge\nnotes.md merge=union\n"
    merged = _race(
        manager,
        other,
        remote,
        write_output,
        {"state.csv": "h\na\n", "notes.md": "a\nb from a\n"},
        {"state.csv": "h\nb\n", "notes.md": "a\nb from b\n", ".gitattributes": rules},
    )
    assert inspect.file(remote, "ground-truth", ".gitattributes") == rules
    assert inspect.file(remote, "ground-truth", "state.csv") == "h\na\nb\n"  # not -merge yet
    assert inspect.file(remote, "ground-truth", "notes.md") == "a\nb from b\n"  # not union yet
    assert trailers_of(other, remote, merged) == {"Mao-Superseded": "notes.md"}

    # ground-truth holds the rules now: the next race follows them
    merged = _race(
        manager,
        other,
        remote,
        write_output,
        {"state.csv": "h\na\nb\nc\n", "notes.md": "a\nx\n"},
        {"state.csv": "h\na\nb\nd\n", "notes.md": "a\ny\n"},
    )
    assert inspect.file(remote, "ground-truth", "state.csv") == "h\na\nb\nd\n"
    assert inspect.file(remote, "ground-truth", "notes.md") == "a\nx\ny\n"
    assert trailers_of(other, remote, merged) == {"Mao-Superseded": "state.csv"}
