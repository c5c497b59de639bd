"""MAO Orchestrator: federated, cron-scheduled pipelines of containerised tools over git datasets."""

__version__ = "0.1.0"
