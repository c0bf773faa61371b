"""A model-free worker for runner, database and Ray tests (importable by name, so Ray workers can load it)."""

from __future__ import annotations

import hashlib
import os

from tokcompress.study.runner import WorkerConfig


class FakeWorker:
    """Deterministic metrics from the row's identity; counts calls; can raise after N rows (injected kill)."""

    calls: list[tuple[str, str, str, str]] = []

    def __init__(self, config: WorkerConfig, interrupt_after: int | None = None, fail_on: str | None = None) -> None:
        self.config = config
        self.interrupt_after = interrupt_after
        self.fail_on = fail_on

    def environment(self):
        return {"versions": {"fake": "1"}, "machine": {"host": "test", "pid": os.getpid()}}

    def evaluate(self, sample, variant):
        if self.interrupt_after is not None and len(FakeWorker.calls) >= self.interrupt_after:
            raise KeyboardInterrupt  # what Ctrl-C or a kill looks like to the runner: not an ordinary failure
        if self.fail_on is not None and variant.label == self.fail_on:
            raise ValueError(f"cannot run {variant.label}")
        FakeWorker.calls.append((self.config.model.name, sample.id, variant.label, variant.budget))
        digest = hashlib.sha256(f"{self.config.model.name}|{sample.id}|{variant.label}|{variant.budget}|{variant.seed}".encode())
        value = digest.digest()[0] / 255
        keep = variant.budget_kwargs.get("keep", 16)
        return {
            "metrics": {"first_token_agreement": float(value > 0.5), "kl_next_token": value, "kept_tokens": float(keep)},
            "output": {"text": f"out-{sample.id}"},
        }

    def close(self):
        pass
