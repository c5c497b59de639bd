"""Coverage: which schedule slots of a pipeline the federation delivered, by whom, and the gaps."""
