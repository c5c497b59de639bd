"""The ``monitoring/`` folder of an install directory: a Prometheus scrape configuration for
the instance's ``/metrics``, the token it sends, and the Grafana dashboard to import; for a
deployment that runs Prometheus and Grafana itself, also Grafana's provisioning files."""

from __future__ import annotations

import json
from typing import Any

import yaml

from mao.observability import DASHBOARD, dashboard_json

FOLDER = "monitoring"
PROMETHEUS_FILE = "prometheus.yml"
TOKEN_FILE = "api-token"
README_FILE = "README.md"
GRAFANA_DASHBOARDS = "/etc/grafana/dashboards"
"""Where a deployment's Grafana finds the provisioned dashboard."""


def scrape_config(target: str, instance: str, credentials_file: str = TOKEN_FILE) -> dict[str, Any]:
    """A Prometheus configuration scraping one MAO instance at ``target`` (``host:port``).

    ``honor_labels`` keeps ``mao_info``'s own ``instance`` label; the target gets the same
    value, so every series of this instance carries its MAO name. ``credentials_file`` is
    read by Prometheus relative to the configuration file.
    """
    return {
        "global": {"scrape_interval": "30s", "evaluation_interval": "30s"},
        "scrape_configs": [
            {
                "job_name": "mao",
                "metrics_path": "/metrics",
                "honor_labels": True,
                "authorization": {"type": "Bearer", "credentials_file": credentials_file},
                "static_configs": [{"targets": [target], "labels": {"instance": instance}}],
            }
        ],
    }


GRAFANA_DATASOURCE_UID = "mao-prometheus"
"""The uid of the Prometheus data source provisioned in a deployment's Grafana."""


def provisioned_dashboard(datasource_uid: str = GRAFANA_DATASOURCE_UID) -> str:
    """The dashboard for Grafana's file provisioning, which fills in no inputs: bound to ``datasource_uid``."""
    text = dashboard_json().replace("${DS_PROMETHEUS}", datasource_uid)
    dashboard = json.loads(text)
    dashboard.pop("__inputs", None)
    return json.dumps(dashboard, indent=2) + "\n"


def grafana_provisioning(prometheus_url: str) -> dict[str, str]:
    """Grafana's provisioning files (paths under ``grafana/``): the data source and the dashboard."""
    datasources = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": GRAFANA_DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
            }
        ],
    }
    dashboards = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "mao",
                "type": "file",
                "disableDeletion": True,
                "options": {"path": GRAFANA_DASHBOARDS, "foldersFromFilesStructure": False},
            }
        ],
    }
    return {
        "grafana/provisioning/datasources/prometheus.yml": yaml.safe_dump(datasources, sort_keys=False),
        "grafana/provisioning/dashboards/mao.yml": yaml.safe_dump(dashboards, sort_keys=False),
        f"grafana/dashboards/{DASHBOARD}": provisioned_dashboard(),
    }


def _readme(instance: str, target: str, services: bool) -> str:
    if services:
        run = (
            "The compose file runs Prometheus (http://127.0.0.1:9090) and Grafana\n"
            "  (http://127.0.0.1:3000, first login admin/admin) with this configuration, the data source and\n"
            "  the dashboard already provisioned (`grafana/`)."
        )
    else:
        run = f"Run it on this host: `prometheus --config.file={PROMETHEUS_FILE}` from this folder."
    return f"""# Monitoring MAO instance {instance}

- `{PROMETHEUS_FILE}`: a Prometheus configuration scraping `http://{target}/metrics`
  with the API token in `{TOKEN_FILE}` (keep both together; the token is the one in `../.env`).
  {run}
- `{DASHBOARD}`: the Grafana dashboard. In Grafana: Dashboards, New, Import, upload
  this file and pick the Prometheus data source for the `DS_PROMETHEUS` input.
"""


def monitoring_files(
    instance: str, target: str, api_token: str, *, services: bool = False
) -> dict[str, tuple[str, int]]:
    """File name (under ``monitoring/``) -> (text, mode). ``target`` is the API's ``host:port``
    as Prometheus reaches it; with ``services``, also Grafana's provisioning files."""
    header = f"# Prometheus scraping MAO instance {instance}; the API token is read from {TOKEN_FILE}.\n"
    config = yaml.safe_dump(scrape_config(target, instance), sort_keys=False, default_flow_style=False)
    files = {
        f"{FOLDER}/{PROMETHEUS_FILE}": (header + config, 0o644),
        f"{FOLDER}/{TOKEN_FILE}": (api_token + "\n", 0o600),
        f"{FOLDER}/{DASHBOARD}": (dashboard_json(), 0o644),
        f"{FOLDER}/{README_FILE}": (_readme(instance, target, services), 0o644),
    }
    if services:
        for name, text in grafana_provisioning("http://prometheus:9090").items():
            files[f"{FOLDER}/{name}"] = (text, 0o644)
    return files
