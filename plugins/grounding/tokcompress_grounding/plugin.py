"""The grounding plugin's hooks: the trained model as a model source, its test set as a dataset, its
measured profile, its ablation suite and the ``tokcompress demo`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field

from tokcompress.hookspecs import hookimpl
from tokcompress.sources import ModelSource
from tokcompress.component import INT64_MAX, Params
from tokcompress.study.datasets import Dataset, Sample, SamplesParams, read_jsonl

from . import CALIBRATION_IMAGES, TESTSET_JSONL

DATA = Path(__file__).parent / "data"
CALIBRATION_PROMPT = "Where is the small red circle?"
"""A grounding question of the model's kind; a profile averages over images, the prompt is fixed."""


class GroundingModel(ModelSource):
    """The trained 16x16-patch grounding LLaVA (docs/grounding-model.md), a local from_pretrained folder."""

    name = "grounding"
    description = "trained 16x16-patch LLaVA that grounds and counts shapes (4.6 MB)"
    calibration_images = CALIBRATION_IMAGES
    calibration_prompt = CALIBRATION_PROMPT

    @classmethod
    def path(cls) -> Path:
        import tokcompress_grounding

        from .model import MissingModelError

        folder = tokcompress_grounding.DEFAULT_MODEL_DIR  # read at call time: tests point it elsewhere
        if not (folder / "config.json").is_file():
            raise MissingModelError(f"model source 'grounding': no trained model at {folder} (train one with "
                                    f"'python -m tokcompress_grounding.train --out {folder}', docs/grounding-model.md)")
        return folder


class GroundingTestDataset(Dataset):
    """The grounding model's committed test set: 200 samples, the first 100 grounding and first 100
    counting questions of the generator's test split."""

    name = "grounding-test"
    Params = SamplesParams

    def load(self, base_dir: Path) -> list[Sample]:
        return read_jsonl(TESTSET_JSONL, None, self.params.limit)


class GeneratedParams(Params):
    split: Literal["val", "test"] = "test"
    """Generator split (never ``train``: the model trained on that stream)."""
    count: int = Field(1000, ge=1)
    """Samples ``0 .. count-1`` of the split (even index grounding, odd counting: half of each)."""
    seed: int = Field(0, ge=0, le=INT64_MAX)
    """Generator seed (the shipped model's test and validation numbers use 0)."""
    cache: Optional[str] = None
    """Folder the images and JSONL are written to once; default ``$XDG_CACHE_HOME/tokcompress/grounding``
    (``~/.cache/...``). Every file is a pure function of (seed, split, index), so a cache is never stale."""


class GroundingGeneratedDataset(Dataset):
    """The first `count` samples of the generator's split, ``make_sample(seed, split, i)``: e.g. the full
    1000-question test set behind the model card's accuracy, written as PNG + JSONL on first use."""

    name = "grounding-generated"
    Params = GeneratedParams

    def label(self) -> str:
        p = self.params
        return f"grounding-{p.split}{p.count}" + (f"-seed{p.seed}" if p.seed else "")

    def load(self, base_dir: Path) -> list[Sample]:
        import os

        from .data import write_split

        p = self.params
        root = Path(p.cache).expanduser() if p.cache else \
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tokcompress" / "grounding"
        folder = root / f"seed{p.seed}-{p.split}{p.count}"
        jsonl = folder / f"{p.split}.jsonl"
        if not jsonl.is_file() or len(jsonl.read_text().splitlines()) != p.count:
            write_split(folder, p.split, p.count, p.seed)
        return read_jsonl(jsonl)


@hookimpl
def tokcompress_register_model_sources():
    return [GroundingModel]


@hookimpl
def tokcompress_register_datasets():
    return [GroundingTestDataset, GroundingGeneratedDataset]


@hookimpl
def tokcompress_register_profiles():
    return [DATA / "profiles"]


@hookimpl
def tokcompress_register_suites():
    return [DATA / "suites"]


@hookimpl
def tokcompress_register_commands():
    from .demo import DemoCommand

    return [DemoCommand]
