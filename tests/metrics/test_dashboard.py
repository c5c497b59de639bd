"""The shipped Grafana dashboard and Prometheus example against what ``/metrics`` really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from metrics_kit import families, pipeline

from mao.models import PipelineIn
from mao.observability import dashboard_json
from mao.observability.monitoring import scrape_config

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/mao-dashboard.json"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bmao_[a-z_]+\b", expr))


def base_name(name: str, exported: set[str]) -> str:
    if name in exported:
        return name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return name[: -len(suffix)]
    return name


def test_the_dashboard_is_a_grafana_import_with_a_prometheus_input() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert json.loads(dashboard_json()) == dashboard  # the package ships the same file
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    assert [(i["name"], i["type"], i["pluginId"]) for i in dashboard["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


def test_every_panel_queries_metrics_the_instance_exports(api, instance) -> None:
    instance.pipelines.init(PipelineIn.model_validate(pipeline("good")))
    instance.runner.run_sync("good")
    exported = set(families(api.get("/metrics").text))
    dashboard = json.loads(DASHBOARD.read_text())
    queried: set[str] = set()
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            names = {base_name(n, exported) for n in metric_names(target["expr"])}
            assert names, (panel["title"], target["expr"])
            assert names <= exported, (panel["title"], names - exported)
            queried |= names
    for variable in dashboard["templating"]["list"]:
        assert metric_names(variable["definition"]) <= exported
    # and every metric the instance exports has a panel (prometheus_client's *_created stamps aside)
    assert {n for n in exported if n.startswith("mao_") and not n.endswith("_created")} <= queried


def test_the_prometheus_example_scrapes_metrics_with_the_token() -> None:
    example = yaml.safe_load(PROMETHEUS.read_text())
    assert example == scrape_config("127.0.0.1:8080", "node-a")
    job = example["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
