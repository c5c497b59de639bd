"""maoctl: the command line (Typer), talking to an orchestrator over its API or to the local instance."""
