"""Git-backed datasets: a clone per dataset, a worktree per branch, merges into ground-truth."""

from mao.datasets.git import Git
from mao.datasets.manager import DatasetManager
from mao.datasets.refs import GROUND_TRUTH, check_branch

__all__ = ["GROUND_TRUTH", "DatasetManager", "Git", "check_branch"]
