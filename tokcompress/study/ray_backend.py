"""``--backend ray``: each model gets its own Ray worker (an actor that loads it once); the driver writes rows.

Calls go to the actors one sample at a time and come back as they finish, so the runner commits
rows while other models are still working; an actor is released as soon as its model's rows are
done, which frees its CPUs/GPUs for the next model. A local instance keeps its temporary files in
the run folder (``<run-dir>/ray``) and starts without a dashboard. Ray is an optional extra:
``pip install 'tokcompress[ray]'``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..errors import TokcompressError
from .datasets import Sample
from .plan import Task, Variant
from .runner import ModelGroup, WorkerConfig, WorkerFactory, _load_error, evaluate_safely

__all__ = ["RayExecutor", "WorkerActor"]

_SOCKET_LIMIT = 107 - 60  # AF_UNIX paths are <= 107 bytes; Ray appends ~60 (session_<date>_<pid>/sockets/plasma_store)


class WorkerActor:
    """Holds one model's worker inside a Ray actor; a model that fails to load answers every call with the error."""

    def __init__(self, make_worker: WorkerFactory, config: WorkerConfig, cwd: str | None = None) -> None:
        self.failure: dict[str, Any] | None = None
        if cwd and os.path.isdir(cwd):  # relative paths in specs (e.g. a profile) mean what they mean to the driver
            os.chdir(cwd)
        try:
            self.worker = make_worker(config)
            self.env = self.worker.environment()
        except Exception as exc:  # noqa: BLE001 - reported per row by the driver
            self.failure = _load_error(exc)

    def evaluate(self, sample: Sample, variants: list[Variant]) -> list[dict[str, Any]]:
        if self.failure is not None:
            return [self.failure] * len(variants)
        return [evaluate_safely(self.worker, sample, v, self.env) for v in variants]

    def pid(self) -> int:
        return os.getpid()


def _short_temp_dir(temp_dir: Path) -> tuple[str, Path | None]:
    """Ray's socket paths must stay under the AF_UNIX limit: a long run folder gets a short symlink in /tmp.

    Returns the path to give Ray and the symlink's folder to delete afterwards (None when not needed).
    """
    temp_dir = temp_dir.resolve()
    temp_dir.mkdir(parents=True, exist_ok=True)
    if len(str(temp_dir)) <= _SOCKET_LIMIT:
        return str(temp_dir), None
    holder = Path(tempfile.mkdtemp(prefix="tcray-"))
    (holder / "r").symlink_to(temp_dir, target_is_directory=True)
    return str(holder / "r"), holder


class RayExecutor:
    """Runs each `ModelGroup` on its own Ray actor.

    temp_dir:         where a local instance keeps its session files (the run folder's ``ray/``).
    address:          an existing cluster (``ray://...`` or ``auto``); None starts a local instance.
    num_cpus:         CPUs of a local instance (None: Ray's default, all).
    cpus_per_worker:  CPUs each model's actor reserves; GPUs come from the suite's ``models[].gpus``.
    runtime_env:      Ray runtime environment of the job (e.g. ``{"env_vars": {"PYTHONPATH": ...}}`` so
                      workers import a worker factory or plugin that is not installed).
    """

    def __init__(self, temp_dir: Path, address: str | None = None, num_cpus: int | None = None,
                 cpus_per_worker: float = 1.0, runtime_env: dict[str, Any] | None = None) -> None:
        self.temp_dir = Path(temp_dir)
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_worker = cpus_per_worker
        self.runtime_env = runtime_env
        self.worker_pids: list[int] = []
        self._link_holder: Path | None = None

    def _init(self):
        try:
            import ray
        except ImportError:
            raise TokcompressError("--backend ray needs Ray: pip install 'tokcompress[ray]' (ray>=2.9)") from None
        if ray.is_initialized():
            return ray, False
        kwargs: dict[str, Any] = {"include_dashboard": False, "configure_logging": False, "log_to_driver": False}
        if self.runtime_env:
            kwargs["runtime_env"] = self.runtime_env
        if self.address:
            ray.init(address=self.address, **kwargs)
        else:
            temp, self._link_holder = _short_temp_dir(self.temp_dir)
            ray.init(num_cpus=self.num_cpus, _temp_dir=temp, **kwargs)
        return ray, True

    def run(self, groups: list[ModelGroup], make_worker: WorkerFactory) -> Iterator[tuple[Task, dict[str, Any]]]:
        ray, started_here = self._init()
        actors: list[Any] = []
        try:
            remote = ray.remote(WorkerActor)
            pending: dict[Any, tuple[int, list[Task]]] = {}
            outstanding: list[int] = []
            for g, group in enumerate(groups):
                actor = remote.options(num_cpus=self.cpus_per_worker, num_gpus=group.config.model.gpus).remote(
                    make_worker, group.config, os.getcwd())
                actors.append(actor)
                outstanding.append(len(group.items))
                for sample, tasks in group.items:
                    pending[actor.evaluate.remote(sample, [t.variant for t in tasks])] = (g, tasks)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    g, tasks = pending.pop(ref)
                    try:
                        results = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a dead actor fails its rows, the others go on
                        results = [{"error": f"Ray worker failed: {type(exc).__name__}: {exc}"}] * len(tasks)
                    yield from zip(tasks, results)
                    outstanding[g] -= 1
                    if outstanding[g] == 0:
                        self._release(ray, actors, g)
        finally:
            for g in range(len(actors)):
                self._release(ray, actors, g)
            if started_here:
                ray.shutdown()
                if self._link_holder is not None:
                    (self._link_holder / "r").unlink(missing_ok=True)
                    self._link_holder.rmdir()
                    self._link_holder = None

    def _release(self, ray, actors: list[Any], g: int) -> None:
        if actors[g] is None:
            return
        try:
            self.worker_pids.append(ray.get(actors[g].pid.remote(), timeout=30))
        except Exception:  # noqa: BLE001 - the actor may already be gone
            pass
        ray.kill(actors[g])
        actors[g] = None
