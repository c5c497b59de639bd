"""The ``monitoring/`` folder of an install directory: a Prometheus scrape configuration for
the instance's ``/metrics``, the token it sends, and the Grafana dashboard to import."""

from __future__ import annotations

from typing import Any

import yaml

from mao.observability import DASHBOARD, dashboard_json

FOLDER = "monitoring"
PROMETHEUS_FILE = "prometheus.yml"
TOKEN_FILE = "api-token"
README_FILE = "README.md"


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


def _readme(instance: str, target: str) -> str:
    return f"""# Monitoring MAO instance {instance}

- `{PROMETHEUS_FILE}`: a Prometheus configuration scraping `http://{target}/metrics`
  with the API token in `{TOKEN_FILE}` (keep both together; the token is the one in `../.env`).
  Run it on this host: `prometheus --config.file={PROMETHEUS_FILE}` from this folder.
- `{DASHBOARD}`: the Grafana dashboard. In Grafana: Dashboards, New, Import, upload
  this file and pick the Prometheus data source for the `DS_PROMETHEUS` input.
"""


def monitoring_files(instance: str, api_port: int, api_token: str) -> dict[str, tuple[str, int]]:
    """File name (under ``monitoring/``) -> (text, mode)."""
    target = f"127.0.0.1:{api_port}"
    header = f"# Prometheus scraping MAO instance {instance}; the API token is read from {TOKEN_FILE}.\n"
    config = yaml.safe_dump(scrape_config(target, instance), sort_keys=False, default_flow_style=False)
    return {
        f"{FOLDER}/{PROMETHEUS_FILE}": (header + config, 0o644),
        f"{FOLDER}/{TOKEN_FILE}": (api_token + "\n", 0o600),
        f"{FOLDER}/{DASHBOARD}": (dashboard_json(), 0o644),
        f"{FOLDER}/{README_FILE}": (_readme(instance, target), 0o644),
    }
