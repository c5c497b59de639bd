from mao.executor.base import Executor, StepResult, StepSpec

__all__ = ["Executor", "StepResult", "StepSpec"]
