"""What a step's container is given: its environment (the step's env with private variables
filled in, and what it learns about its run) and the node branch it writes."""

from __future__ import annotations

from mao.errors import InvalidInput
from mao.models import PRIVATE_RE
from mao.pipelines import unset_variables


def node_branch(step: str, instance: str) -> str:
    """The branch of a dataset a step writes on one instance: ``<step>-<instance>``."""
    return f"{step}-{instance}"


#: Environment names every step container gets; a step's own env cannot override them.
STEP_ENV_NAMES = ("MAO_INSTANCE", "MAO_PIPELINE", "MAO_STEP", "MAO_RUN_ID", "MAO_SLOT")


def step_environment(instance: str, pipeline: str, step: str, run_id: int, slot: str | None) -> dict[str, str]:
    """What a step's container learns about its run (``MAO_SLOT`` is empty for an ad-hoc run)."""
    return dict(zip(STEP_ENV_NAMES, (instance, pipeline, step, str(run_id), slot or ""), strict=True))


def render_env(
    env: dict[str, str], variables: dict[str, str], pipeline: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """Fill ``{{ NAME }}`` placeholders from the private variables. Returns the env and the
    secret values used (for log masking); raises InvalidInput naming any missing variable
    (and, given the ``pipeline``, the command that sets it)."""
    out, secrets, missing = {}, [], []
    for key, value in env.items():
        match = PRIVATE_RE.fullmatch(value)
        if match:
            name = match.group(1)
            if name not in variables:
                missing.append(name)
                continue
            out[key] = variables[name]
            secrets.append(variables[name])
            # log masking works line by line: mask each line of a multi-line value too
            secrets.extend(part for part in variables[name].splitlines() if len(part.strip()) >= 4)
        else:
            out[key] = value
    if missing and pipeline is not None:
        raise unset_variables(pipeline, missing)
    if missing:
        raise InvalidInput(
            "private variables not set on this instance: "
            + ", ".join(sorted(set(missing)))
            + " (set them with `maoctl pipeline set-variable` or `maoctl instance init`)"
        )
    return out, secrets
