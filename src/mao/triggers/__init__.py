"""Runs started when an input dataset's ``ground-truth`` moves (a pipeline's ``trigger``).

- :mod:`.models`: the heads each trigger last saw and last fired for (table ``trigger_heads``);
- :mod:`.heads`: the remote's ``ground-truth`` commit, read with ``git ls-remote``;
- :mod:`.state`: those heads in the local store, and :func:`~.state.due`, the debounce and
  the any-of/all-of decision (pure);
- :mod:`.watch`: :class:`~.watch.TriggerWatch`, the background loop that polls the remotes,
  hears of the federation's merges from the registry's watch, claims a change in ``one``
  mode and records the run.
"""
