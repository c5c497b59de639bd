"""A private marketplace for ``instance init`` tests, and an in-process ``maoctl`` runner."""

from __future__ import annotations

import json
from pathlib import Path

from maoctl_kit import run_maoctl  # noqa: F401  (re-exported for the tests here)

SECRET = "s3cr3t-Value-7f1e"

FEDERATIONS = [{"name": "test-fed", "description": "tests", "operator": "Test Ops", "contact": "ops@example.org"}]
TOOLS = [
    {
        "name": "collector",
        "image": "example/collector:1.0",
        "author": "Tests",
        "description": "collects records",
        "data_repo": "",
        "code_repo": "",
        "artefact": "records",
    },
]
HARVEST = {
    "name": "harvest",
    "description": "Harvests records and analyses them",
    "steps": [
        {
            "name": "fetch",
            "tool": "collector",
            "output_dataset": "raw-records",
            "env": {"TOKEN": "{{ TOKEN }}", "MODE": "full"},
        },
        {
            "name": "analyse",
            "tool": "collector",
            "input_dataset": "raw-records",
            "output_dataset": "harvest-insights",
            "cmd": "analyse",
        },
    ],
}
ORPHAN = {
    "name": "orphan",
    "description": "Uses a tool nobody offers",
    "steps": [{"name": "run", "tool": "ghost", "output_dataset": "orphan-data"}],
}
SHARED_MARKET = {
    "name": "shared",
    "description": "marketplace version",
    "steps": [{"name": "market-step", "tool": "collector", "output_dataset": "shared-data"}],
}
PIPELINES = [HARVEST, ORPHAN, SHARED_MARKET]

HEADER = (
    "Available MAO Pipelines ('✓'/'✗' indicate if the pipeline is already registered with this instance or federation):"
)


def write_catalogue(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (("federations", FEDERATIONS), ("tools", TOOLS), ("pipelines", PIPELINES)):
        (directory / f"{name}.json").write_text(json.dumps(data, indent=2))
    return directory
