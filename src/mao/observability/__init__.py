"""Observability: the instance's Prometheus metrics (``/metrics``) and the metering of registry calls.

The Grafana dashboard and a Prometheus scrape configuration ship beside this module
(``grafana/mao-dashboard.json``, ``prometheus.yml``).
"""

from __future__ import annotations

from importlib import resources

from mao.observability.metered import MeteredRegistry, unwrap
from mao.observability.metrics import Metrics

DASHBOARD = "mao-dashboard.json"


def dashboard_json() -> str:
    """The shipped Grafana dashboard (datasource input ``DS_PROMETHEUS``)."""
    return resources.files(__package__).joinpath("grafana", DASHBOARD).read_text(encoding="utf-8")


__all__ = ["DASHBOARD", "MeteredRegistry", "Metrics", "dashboard_json", "unwrap"]
