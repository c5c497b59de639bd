"""Runs: recorded and queued by the coordinator, their steps executed by the launcher.

- :mod:`mao.runs.coordinator`: ``RunCoordinator`` records runs (overlap policy, one store
  transaction per batch), queues them for the run queue's workers, cancels and waits for
  them, and closes them (``RunCloser``).
- :mod:`mao.runs.launcher`: ``RunLauncher`` executes a run's steps in order: the output
  dataset's worktree and the input view, the container, the quality check, the commit, and
  the hand-over to the dataset's policy (:mod:`mao.delivery`).
- :mod:`mao.runs.recovery`: what a start does with the runs a stop or crash left behind.
- :mod:`mao.runs.steps`: ``StepContext`` (what a step is given), ``StepRecord`` (what it
  learns on its way) and ``StepRows``, the one writer of a step's row.
- :mod:`mao.runs.environment`: a step container's environment and its node branch.
- :mod:`mao.runs.runlog`: a run's log lines, to the store in batches and to the event bus.
"""
