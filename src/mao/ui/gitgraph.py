"""A dataset's ``ground-truth`` history as a graph, like ``git log --graph``: one row per
commit (newest first), node branches in their own lanes merging in, tally commits marked.
Geometry here, markup in ``templates/_charts.html``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROW = 26.0
LANE = 16.0
PAD = 12.0
WIDTH = 640.0
MAX_SUBJECT = 64
SERIES_CLASSES = 6
TALLY_TRAILER = "Mao-Vote-For"


@dataclass(frozen=True)
class Node:
    x: float
    y: float
    row: int
    lane: int
    sha: str
    parents: tuple[str, ...]
    kind: str
    """``tally`` (a vote's outcome), ``merge`` (a node branch merged in) or ``commit``."""
    subject: str
    title: str

    @property
    def cls(self) -> str:
        return f"s{self.lane % SERIES_CLASSES}"


@dataclass(frozen=True)
class Edge:
    path: str
    lane: int
    child: str
    parent: str
    beyond: bool
    """The parent is older than the commits shown: the line runs off the bottom."""

    @property
    def cls(self) -> str:
        return f"s{self.lane % SERIES_CLASSES}"


@dataclass
class GitGraph:
    ident: str
    title: str
    desc: str
    width: float = WIDTH
    height: float = ROW
    text_x: float = 0.0
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.nodes


def kind_of(commit: dict[str, Any]) -> str:
    if TALLY_TRAILER in (commit.get("trailers") or {}):
        return "tally"
    if len(commit.get("parents") or []) > 1:
        return "merge"
    return "commit"


def topo_order(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``history`` with no commit before one of its children, a merged branch's commits
    together right after their merge (as ``git log --graph`` shows them); commits of the
    same second otherwise come in ``git log``'s order."""
    shas = {commit["sha"] for commit in history}
    children = {sha: 0 for sha in shas}
    for commit in history:
        for parent in set(commit.get("parents") or []):
            if parent in shas:
                children[parent] += 1
    by_sha = {commit["sha"]: commit for commit in history}
    stack = [commit["sha"] for commit in reversed(history) if children[commit["sha"]] == 0]
    out: list[dict[str, Any]] = []
    while stack:
        sha = stack.pop()
        out.append(by_sha[sha])
        for parent in dict.fromkeys(by_sha[sha].get("parents") or []):
            if parent in children:
                children[parent] -= 1
                if children[parent] == 0:
                    stack.append(parent)
    return out if len(out) == len(history) else history


def _free(lanes: list[str | None], avoid: int = -1) -> int:
    for index, held in enumerate(lanes):
        if held is None and index != avoid:
            return index
    lanes.append(None)
    return len(lanes) - 1


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    middle = (y1 + y2) / 2
    return f"C{x1:g},{middle:g} {x2:g},{middle:g} {x2:g},{y2:g}"


Link = tuple[int, int, str, int]
"""A commit's link to a parent: (child row, child lane, parent sha, lane the line travels in)."""


def git_graph(dataset: str, history: list[dict[str, Any]]) -> GitGraph:
    """The graph of ``history`` (``DatasetManager.log``'s entries, each with its ``parents``,
    in :func:`topo_order`)."""
    placed, links = _lanes(history)
    kinds = {"tally": 0, "merge": 0, "commit": 0}
    for commit in history:
        kinds[kind_of(commit)] += 1
    used = max((lane for _, lane in placed.values()), default=0)
    used = max([used, *(via for *_, via in links)])
    x = [PAD + LANE * index for index in range(used + 1)]
    bottom = ROW * len(history)
    graph = GitGraph(ident=f"history-{dataset}", title=f"ground-truth of {dataset}", desc="")
    graph.height = bottom + 4
    graph.text_x = PAD + LANE * (used + 1) + 4
    graph.edges = [_edge(link, history[link[0]]["sha"], placed, x, bottom) for link in links]
    for row, commit in enumerate(history):
        lane = placed[commit["sha"]][1]
        graph.nodes.append(_node(commit, row, lane, x[lane]))
    counted = ", ".join(f"{n} {name}{'s' if n != 1 else ''}" for name, n in kinds.items() if n) or "no commit"
    graph.desc = (
        f"The newest {len(history)} commits of ground-truth of {dataset}, newest first: {counted}; "
        f"{used + 1} lane{'s' if used else ''}"
    )
    return graph


def _y(row: int) -> float:
    return ROW * row + ROW / 2


def _lanes(history: list[dict[str, Any]]) -> tuple[dict[str, tuple[int, int]], list[Link]]:
    """Each commit's (row, lane), and its links to its parents, in the order drawn."""
    lanes: list[str | None] = []
    placed: dict[str, tuple[int, int]] = {}
    links: list[Link] = []
    for row, commit in enumerate(history):
        sha = commit["sha"]
        mine = [index for index, held in enumerate(lanes) if held == sha]
        lane = mine[0] if mine else _free(lanes)
        for index in mine:
            lanes[index] = None
        placed[sha] = (row, lane)
        for number, parent in enumerate(commit.get("parents") or []):
            elsewhere = [index for index, held in enumerate(lanes) if held == parent]
            if elsewhere:
                via = elsewhere[0]
            elif number == 0 and lanes[lane] is None:
                via = lane
            else:
                via = _free(lanes, avoid=lane)
            lanes[via] = parent
            links.append((row, lane, parent, via))
    return placed, links


def _edge(link: Link, child: str, placed: dict[str, tuple[int, int]], x: list[float], bottom: float) -> Edge:
    """The line of ``link``: to its parent's node, or off the bottom when the parent is not shown."""
    row, lane, parent, via = link
    x1, y1, xv = x[lane], _y(row), x[via]
    if parent not in placed:
        steps = f"M{x1:g},{y1:g} " + (_curve(x1, y1, xv, y1 + ROW / 2) + " " if xv != x1 else "")
        return Edge(f"{steps}V{bottom:g}", via, child, parent, True)
    prow, plane = placed[parent]
    x2, y2 = x[plane], _y(prow)
    if prow == row + 1 or (xv == x1 == x2):
        path = f"M{x1:g},{y1:g} " + (f"L{x2:g},{y2:g}" if x1 == x2 else _curve(x1, y1, x2, y2))
    else:
        path = f"M{x1:g},{y1:g} "
        if xv != x1:
            path += _curve(x1, y1, xv, y1 + ROW) + " "
        else:
            path += f"L{xv:g},{y1 + ROW:g} "
        path += f"L{xv:g},{y2 - ROW:g} "
        path += _curve(xv, y2 - ROW, x2, y2) if xv != x2 else f"L{x2:g},{y2:g}"
    return Edge(path, via, child, parent, False)


def _node(commit: dict[str, Any], row: int, lane: int, x: float) -> Node:
    """The node of ``commit`` in ``row`` and ``lane`` (at ``x``): its kind, its subject as shown, its title."""
    sha = commit["sha"]
    kind = kind_of(commit)
    subject = str(commit.get("subject") or "")
    shown = subject if len(subject) <= MAX_SUBJECT else subject[: MAX_SUBJECT - 1] + "…"
    trailers = commit.get("trailers") or {}
    about = []
    if kind == "tally":
        about.append(f"tally of slot {trailers.get('Mao-Slot', '?')}")
    elif kind == "merge":
        about.append(f"merge of {len(commit['parents'])} parents")
    if "Mao-Instance" in trailers:
        about.append(f"by {trailers['Mao-Instance']}")
    title = " · ".join([sha[:10], subject, str(commit.get("author") or ""), str(commit.get("date") or ""), *about])
    return Node(x, _y(row), row, lane, sha, tuple(commit.get("parents") or []), kind, shown, title)
