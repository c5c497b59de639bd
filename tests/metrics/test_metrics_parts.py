"""Metrics built from what they read (events, a run count, a live count, the instance's facts),
without an instance."""

from __future__ import annotations

from mao.events import EventBus, RunFinished
from mao.observability import Metrics
from mao.status import RunStatus


def test_metrics_read_their_collaborators_at_scrape_only() -> None:
    scraped: list[str] = []

    def count_runs() -> list[tuple[str, str, int]]:
        scraped.append("runs")
        return [("p", "succeeded", 3)]

    def count_live() -> int:
        scraped.append("live")
        return 2

    events = EventBus()
    metrics = Metrics(events, count_runs=count_runs, count_live=count_live, info=("n1", "9.9", "local"))
    assert scraped == []  # building it reads nothing
    events.publish(RunFinished(run_id=1, pipeline="p", status=RunStatus.SUCCEEDED, error=None, slot=None, duration_s=2))
    text = metrics.exposition().decode()
    assert sorted(scraped) == ["live", "runs"]
    assert 'mao_info{instance="n1",registry="local",version="9.9"} 1.0' in text
    assert 'mao_runs{pipeline="p",status="succeeded"} 3.0' in text
    assert "mao_instances_live 2.0" in text
    assert 'mao_run_duration_seconds_count{pipeline="p",status="succeeded"} 1.0' in text
    metrics.close()
    events.publish(RunFinished(run_id=2, pipeline="p", status=RunStatus.SUCCEEDED, error=None, slot=None, duration_s=2))
    assert 'mao_run_duration_seconds_count{pipeline="p",status="succeeded"} 1.0' in metrics.exposition().decode()
