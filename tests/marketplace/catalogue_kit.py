"""A small valid catalogue, and a writer for catalogue directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maoctl_kit import run_maoctl  # noqa: F401  (re-exported for the tests here)

FEDERATIONS = [
    {"name": "fed-one", "description": "first", "operator": "Ops One", "contact": "ops@example.org"},
    {
        "name": "fed-two",
        "description": "second",
        "operator": "Ops Two",
        "contact": "https://example.org/join",
        "etcd_peer_hint": "10.0.0.1:2380",
    },
]
TOOLS = [
    {
        "name": "collector",
        "image": "example/collector:1.0",
        "author": "A",
        "description": "collects",
        "data_repo": "",
        "code_repo": "https://example.org/collector.git",
        "artefact": "images",
    },
]
PIPELINES = [
    {
        "name": "collect",
        "description": "Collects things",
        "steps": [
            {
                "name": "fetch",
                "tool": "collector",
                "output_dataset": "raw",
                "env": {"TOKEN": "{{ TOKEN }}", "MODE": "full"},
            },
            {"name": "sum", "tool": "collector", "input_dataset": "raw", "output_dataset": "summary", "cmd": "sum"},
        ],
    },
]


def write_catalogue(directory: Path, federations: Any = None, tools: Any = None, pipelines: Any = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (("federations", federations), ("tools", tools), ("pipelines", pipelines)):
        default = {"federations": FEDERATIONS, "tools": TOOLS, "pipelines": PIPELINES}[name]
        payload = data if data is not None else default
        text = payload if isinstance(payload, str) else json.dumps(payload)
        (directory / f"{name}.json").write_text(text)
    return directory
