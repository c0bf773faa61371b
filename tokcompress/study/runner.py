"""Run a suite: compute the rows the database lacks, write each one as soon as it exists.

The runner owns the database; an executor only computes. `LocalExecutor` (default) evaluates in
this process, one model at a time; `tokcompress.study.ray_backend.RayExecutor` spreads models over
Ray workers. Both yield ``(task, result)`` pairs and the runner commits them one by one, so killing
a run at any moment loses only the rows in flight, and a rerun computes only what is missing.
"""

from __future__ import annotations

import datetime as _dt
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from ..errors import TokcompressError
from .datasets import Sample
from .db import ResultsDB
from .plan import Plan, Task, Variant, build_plan
from .suite import Generation, LoadedSuite, ModelEntry, Timing

__all__ = [
    "WorkerConfig",
    "Worker",
    "ModelGroup",
    "Executor",
    "LocalExecutor",
    "RunError",
    "RunSummary",
    "run_suite",
    "evaluate_safely",
]


class RunError(TokcompressError, RuntimeError):
    """A row could not be computed (the rows before it are recorded)."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs to evaluate rows for one model (plain data: it travels to Ray workers)."""

    model: ModelEntry
    metrics: list[dict[str, Any]]
    generation: Generation
    timing: Timing


class Worker(Protocol):
    """Evaluates rows of one model. Built from a `WorkerConfig` by a worker factory."""

    def environment(self) -> dict[str, Any]:
        """``{"versions": {...}, "machine": {...}}`` of the process doing the work."""

    def evaluate(self, sample: Sample, variant: Variant) -> dict[str, Any]:
        """``{"metrics": {name: value | None}, "output": {...}}`` for one row."""

    def close(self) -> None:
        """Release the model."""


WorkerFactory = Callable[[WorkerConfig], Worker]


@dataclass
class ModelGroup:
    """The pending rows of one model, grouped by sample (a worker computes each sample's reference once)."""

    config: WorkerConfig
    items: list[tuple[Sample, list[Task]]]

    @property
    def size(self) -> int:
        return sum(len(tasks) for _, tasks in self.items)


class Executor(Protocol):
    def run(self, groups: list[ModelGroup], make_worker: WorkerFactory) -> Iterator[tuple[Task, dict[str, Any]]]:
        """Yield ``(task, result)`` for every task; a result with an ``"error"`` key marks a failed row."""


def evaluate_safely(worker: Worker, sample: Sample, variant: Variant, env: dict[str, Any]) -> dict[str, Any]:
    """One row's result with timing, creation time and environment; an exception becomes an ``"error"`` entry."""
    started = time.perf_counter()
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    try:
        result = dict(worker.evaluate(sample, variant))
    except Exception as exc:  # noqa: BLE001 - reported per row; KeyboardInterrupt still propagates
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    return {**result, **env, "created": created, "duration_s": time.perf_counter() - started}


def _load_error(exc: BaseException) -> dict[str, Any]:
    return {"error": f"loading the model failed: {type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


class LocalExecutor:
    """In this process, one model after another (the default backend)."""

    def run(self, groups: list[ModelGroup], make_worker: WorkerFactory) -> Iterator[tuple[Task, dict[str, Any]]]:
        for group in groups:
            try:
                worker = make_worker(group.config)
                env = worker.environment()
            except Exception as exc:  # noqa: BLE001
                failure = _load_error(exc)
                for _, tasks in group.items:
                    for task in tasks:
                        yield task, failure
                continue
            try:
                for sample, tasks in group.items:
                    for task in tasks:
                        yield task, evaluate_safely(worker, sample, task.variant, env)
            finally:
                worker.close()


@dataclass
class RunSummary:
    total: int  # rows in the suite
    skipped: int  # already recorded before this run
    written: int = 0
    failed: list[tuple[Task, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.failed and self.skipped + self.written == self.total


def group_tasks(plan: Plan, tasks: Iterable[Task]) -> list[ModelGroup]:
    suite = plan.suite.suite
    metrics = suite.metric_config()
    by_model: dict[str, ModelGroup] = {}
    for task in tasks:
        group = by_model.get(task.model.name)
        if group is None:
            config = WorkerConfig(task.model, metrics, suite.generation, suite.timing)
            group = by_model[task.model.name] = ModelGroup(config, [])
        if not group.items or group.items[-1][0].id != task.sample.id:
            group.items.append((task.sample, []))
        group.items[-1][1].append(task)
    return list(by_model.values())


def default_worker_factory() -> WorkerFactory:
    from .evaluate import ModelWorker

    return ModelWorker


def run_suite(
    loaded: LoadedSuite,
    db: ResultsDB,
    executor: Executor | None = None,
    make_worker: WorkerFactory | None = None,
    keep_going: bool = False,
    progress: bool = True,
    plan: Plan | None = None,
) -> RunSummary:
    """Compute and record every row of `loaded` that `db` lacks. Returns counts; raises `RunError` on a
    failed row unless `keep_going` (then failures are listed in the summary and retried by the next run)."""
    plan = plan or build_plan(loaded)
    recorded = db.keys()
    pending = [t for t in plan.tasks if t.key not in recorded]
    summary = RunSummary(total=len(plan.tasks), skipped=len(plan.tasks) - len(pending))
    if not pending:
        return summary
    executor = executor or LocalExecutor()
    make_worker = make_worker or default_worker_factory()
    started = time.perf_counter()
    with _progress(progress, len(pending), summary.skipped) as advance:
        try:
            for task, result in executor.run(group_tasks(plan, pending), make_worker):
                if "error" in result:
                    summary.failed.append((task, result["error"]))
                    if not keep_going:
                        raise RunError(
                            f"row failed: model {task.key.model!r}, sample {task.key.sample!r}, spec "
                            f"{task.variant.label!r}, budget {task.key.budget}, seed {task.key.seed}: {result['error']}"
                            + (f"\n{result['traceback']}" if result.get("traceback") else "")
                        )
                elif db.insert(_row(loaded, task, result)):
                    summary.written += 1
                advance(task)
        finally:
            summary.seconds = time.perf_counter() - started
    return summary


def _row(loaded: LoadedSuite, task: Task, result: dict[str, Any]) -> dict[str, Any]:
    return {
        **task.key.as_dict(),
        "spec": task.variant.label,
        "suite": loaded.name,
        "spec_json": task.variant.spec,
        "metrics": result["metrics"],
        "output": result.get("output", {}),
        "versions": result.get("versions", {}),
        "machine": result.get("machine", {}),
        "created": result.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": result.get("duration_s"),
    }


class _progress:
    """A rich progress bar with ETA on stderr (or nothing); yields ``advance(task)``."""

    def __init__(self, enabled: bool, total: int, skipped: int) -> None:
        self.enabled, self.total, self.skipped = enabled, total, skipped
        self.bar = None

    def __enter__(self) -> Callable[[Task], None]:
        if not self.enabled:
            return lambda task: None
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}"),
            console=Console(stderr=True),
        )
        self.bar.start()
        note = f" ({self.skipped} already recorded)" if self.skipped else ""
        tid = self.bar.add_task(f"rows{note}", total=self.total, current="")

        def advance(task: Task) -> None:
            k = task.key
            self.bar.update(tid, advance=1, current=f"{k.model} | {k.sample} | {task.variant.label} {k.budget}")

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def default_db_path(loaded: LoadedSuite, run_dir: Path | None = None) -> Path:
    """``runs/<suite name>/results.sqlite`` unless a run folder is given."""
    return (run_dir or Path("runs") / loaded.name) / "results.sqlite"
