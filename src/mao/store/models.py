"""Tables of the instance-local store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Pipeline(Base):
    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    steps: Mapped[list[Any]] = mapped_column(JSON)
    trigger: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The pipeline's dataset trigger (:class:`mao.models.TriggerIn` as JSON), if it has one."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    slot: Mapped[str | None] = mapped_column(String(32), index=True)
    trigger_changes: Mapped[list[Any] | None] = mapped_column(JSON)
    """A run triggered by datasets' changes: ``<dataset>@<commit>`` of each change it is for."""
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    steps: Mapped[list[StepRun]] = relationship(
        back_populates="run", order_by="StepRun.position", cascade="all, delete-orphan"
    )


class StepRun(Base):
    __tablename__ = "step_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    tool: Mapped[str] = mapped_column(String(64))
    image: Mapped[str | None] = mapped_column(String(512))
    image_digest: Mapped[str | None] = mapped_column(String(256))
    input_dataset: Mapped[str | None] = mapped_column(String(64))
    input_commit: Mapped[str | None] = mapped_column(String(64))
    output_dataset: Mapped[str | None] = mapped_column(String(64))
    output_branch: Mapped[str | None] = mapped_column(String(160))
    output_commit: Mapped[str | None] = mapped_column(String(64))
    merge_commit: Mapped[str | None] = mapped_column(String(64))
    pushed: Mapped[bool | None]
    exit_code: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    suspect: Mapped[bool] = mapped_column(default=False, server_default=false())
    """A control metric broke its rule (or mao-metrics.json was invalid): see suspect_detail."""
    suspect_detail: Mapped[str | None] = mapped_column(Text)
    executor: Mapped[str | None] = mapped_column(String(32))
    """The engine that ran (or runs) the step: ``docker``, ``swarm``, ``slurm``, ``kubernetes``..."""
    node: Mapped[str | None] = mapped_column(String(255))
    """The host the engine placed the step on, when it says."""
    job: Mapped[str | None] = mapped_column(String(255))
    """The engine's own name of the step's work: a Slurm job id, a Kubernetes Job, a Swarm service."""
    placement: Mapped[str | None] = mapped_column(String(16))
    """``queued`` (accepted by the engine, not started) or ``running``, as the engine last said."""
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    run: Mapped[Run] = relationship(back_populates="steps")
    attempts: Mapped[list[StepAttempt]] = relationship(
        back_populates="step", order_by="StepAttempt.number", cascade="all, delete-orphan", lazy="selectin"
    )


class StepAttempt(Base):
    """One run of a step's container: a step with a retry policy has one per attempt (the
    step's row holds the last one's result)."""

    __tablename__ = "step_attempts"
    __table_args__ = (UniqueConstraint("step_id", "number", name="uq_step_attempts_step_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("step_runs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    """1 for the first attempt."""
    status: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Float(precision=53))
    retry_delay_s: Mapped[float | None] = mapped_column(Float(precision=53))
    """Seconds waited after this attempt before the next one; None: it was the last."""

    step: Mapped[StepRun] = relationship(back_populates="attempts")


class LogLine(Base):
    __tablename__ = "log_lines"
    __table_args__ = (Index("ix_log_lines_run_id_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[str | None] = mapped_column(String(64))
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    line: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int | None]
    """The attempt of the step whose container wrote the line; None: not a container's line."""


class PrivateVariable(Base):
    __tablename__ = "private_variables"
    __table_args__ = (UniqueConstraint("pipeline", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text)


class RegistryEntry(Base):
    """The standalone registry: one row per key, JSON value, optional expiry (lease)."""

    __tablename__ = "registry_entries"

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    owner: Mapped[str | None] = mapped_column(String(128))


class MetricValue(Base):
    """One control metric's value, as a step's tool wrote it to ``mao-metrics.json``.

    ``series_key`` orders a series: the run's slot, or for a run without one the time it
    was recorded, in the same ``YYYY-MM-DDTHH:MM:SSZ`` form; so values sort by slot, then time.
    """

    __tablename__ = "metric_values"
    __table_args__ = (Index("ix_metric_values_series", "pipeline", "step", "metric", "series_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    pipeline: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float(precision=53))
    slot: Mapped[str | None] = mapped_column(String(32))
    series_key: Mapped[str] = mapped_column(String(32))
    suspect: Mapped[bool] = mapped_column(default=False)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
