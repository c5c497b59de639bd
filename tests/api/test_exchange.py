"""Data by commit: the trees a node fetches and the tree it sends back (mao.exchange and the
``/exchange`` routes). Hostile tars are refused whole and change nothing; only the step's own
token opens its transfer; the routes are outside the OpenAPI document and the 1 MiB limit."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mao.errors import Conflict, InvalidInput, PayloadTooLarge, Unauthorized
from mao.exchange import StepExchange

MakeTar = Callable[..., bytes]


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x\n") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _special(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    tree = tmp_path / "wt"
    (tree / "sub").mkdir(parents=True)
    (tree / ".git").write_text("gitdir: /somewhere/else\n")
    (tree / "old.csv").write_text("old\n")
    (tree / "sub" / "kept.txt").write_text("kept\n")
    return tree


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (p.read_text() if p.is_file() else "<dir>") for p in sorted(root.rglob("*"))}


@pytest.fixture
def exchange(tmp_path: Path) -> StepExchange:
    return StepExchange("http://head:8321/", tmp_path / "exchange", max_bytes=64 * 1024)


HOSTILE = {
    "absolute path": _tar(_file("/etc/evil")),
    "dot-dot": _tar(_file("../evil")),
    "dot-dot inside": _tar(_file("sub/../../evil")),
    "symlink out (absolute)": _tar(_link("passwd", "/etc/passwd")),
    "symlink out (relative)": _tar(_link("up", "../../outside")),
    "hard link out": _tar(_link("hard", "/etc/passwd", tarfile.LNKTYPE)),
    "character device": _tar(_special("tty", tarfile.CHRTYPE)),
    "block device": _tar(_special("disk", tarfile.BLKTYPE)),
    "fifo": _tar(_special("pipe", tarfile.FIFOTYPE)),
    ".git file": _tar(_file("ok.csv"), _file(".git", b"gitdir: /tmp/x\n")),
    ".git inside": _tar(_file("ok.csv"), _file(".git/hooks/post-commit", b"#!/bin/sh\nrm -rf /\n")),
    "nested .git": _tar(_file("sub/.git/config")),
    "gzip": gzip.compress(_tar(_file("ok.csv"))),
    "no tar at all": b"this is not a tar archive" * 40,
    "truncated": _tar(_file("big.csv", b"y" * 5000))[:1200],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_tree_is_refused_and_changes_nothing(
    case: str, exchange: StepExchange, worktree: Path, tmp_path: Path
) -> None:
    before = _snapshot(worktree)
    opened = exchange.open(worktree, None)
    with pytest.raises(InvalidInput):
        exchange.receive(opened.key, opened.token, io.BytesIO(HOSTILE[case]))
    assert _snapshot(worktree) == before
    assert not opened.received
    assert not (tmp_path / "etc").exists() and not (tmp_path / "evil").exists()
    assert sorted(p.name for p in (tmp_path / "exchange").iterdir()) == []  # nothing left aside


def test_a_good_tree_replaces_the_worktrees_files_and_keeps_its_git(exchange: StepExchange, worktree: Path) -> None:
    opened = exchange.open(worktree, None)
    body = _tar(_file("new.csv", b"a,b\n"), _file("sub/kept.txt", b"changed\n"), _link("alias", "new.csv"))
    assert exchange.receive(opened.key, opened.token, io.BytesIO(body)) == {"entries": 3}
    assert _snapshot(worktree) == {
        ".git": "gitdir: /somewhere/else\n",
        "alias": "a,b\n",
        "new.csv": "a,b\n",
        "sub": "<dir>",
        "sub/kept.txt": "changed\n",
    }
    assert opened.received
    with pytest.raises(Conflict):
        exchange.receive(opened.key, opened.token, io.BytesIO(body))


def test_only_the_steps_own_token_opens_its_transfer_and_only_while_it_runs(
    exchange: StepExchange, worktree: Path
) -> None:
    one, other = exchange.open(worktree, None), exchange.open(worktree, None)
    assert one.transfer.data_url == f"http://head:8321/exchange/steps/{one.key}/data"
    assert one.transfer.input_url is None and one.token != other.token
    for key, token in [(one.key, other.token), (one.key, ""), ("nosuchkey", one.token)]:
        with pytest.raises(Unauthorized):
            exchange.pack(key, token, "data")
    exchange.close(one.key)
    with pytest.raises(Unauthorized):
        exchange.receive(one.key, one.token, io.BytesIO(_tar(_file("a"))))


def test_a_tree_over_the_limit_is_refused(exchange: StepExchange, worktree: Path) -> None:
    before = _snapshot(worktree)
    opened = exchange.open(worktree, None)
    with pytest.raises(PayloadTooLarge):
        exchange.receive(opened.key, opened.token, io.BytesIO(_tar(_file("big", b"z" * 70 * 1024))))
    assert _snapshot(worktree) == before


def test_the_trees_sent_to_a_node_leave_out_git(exchange: StepExchange, worktree: Path, tmp_path: Path) -> None:
    view = tmp_path / "input"
    view.mkdir()
    (view / ".git").write_text("gitdir: x\n")
    (view / "rows.csv").write_text("1\n")
    opened = exchange.open(worktree, view)
    for tree, names in [("data", {"old.csv", "sub", "sub/kept.txt"}), ("input", {"rows.csv"})]:
        path = exchange.pack(opened.key, opened.token, tree)  # type: ignore[arg-type]
        with tarfile.open(path) as tar:
            assert set(tar.getnames()) == names
        path.unlink()


def test_no_exchange_url_is_a_clear_error(tmp_path: Path, worktree: Path) -> None:
    with pytest.raises(InvalidInput, match="exchange_url"):
        StepExchange(None, tmp_path, 1024).open(worktree, None)


# ---------------------------------------------------------------------------------- the routes


def test_the_routes_take_the_steps_token_only_and_big_trees(make_client, worktree: Path) -> None:
    client = make_client(api_token="operator-token-0123456789abcdef", exchange_url="http://testserver")
    exchange = client.app.state.instance.exchange
    opened = exchange.open(worktree, None)
    url = f"/exchange/steps/{opened.key}/data"
    assert client.get(url, headers={"Authorization": "Bearer operator-token-0123456789abcdef"}).status_code == 401
    got = client.get(url, headers={"Authorization": f"Bearer {opened.token}"})
    assert got.status_code == 200 and got.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(got.content)) as tar:
        assert "old.csv" in tar.getnames() and ".git" not in tar.getnames()
    body = _tar(_file("big.bin", b"b" * (2 * 1024 * 1024)))  # over the API's 1 MiB body limit
    put = client.put(
        url, content=body, headers={"Authorization": f"Bearer {opened.token}", "Content-Type": "application/x-tar"}
    )
    assert put.status_code == 200, put.text
    assert (worktree / "big.bin").stat().st_size == 2 * 1024 * 1024 and not (worktree / "old.csv").exists()
    again = client.put(url, content=body, headers={"Authorization": f"Bearer {opened.token}"})
    assert again.status_code == 409
    assert not any(path.startswith("/exchange") for path in client.get("/openapi.json").json()["paths"])


def test_a_hostile_tree_through_the_route_is_a_400(make_client, worktree: Path) -> None:
    client = make_client(exchange_url="http://testserver")
    opened = client.app.state.instance.exchange.open(worktree, None)
    put = client.put(
        f"/exchange/steps/{opened.key}/data",
        content=HOSTILE["symlink out (absolute)"],
        headers={"Authorization": f"Bearer {opened.token}"},
    )
    assert put.status_code == 400 and "refused" in put.json()["error"]["message"]
    assert (worktree / "old.csv").exists()
