"""The grounding plugin's hooks: the trained model as a model source, its test set as a dataset, its
measured profile, its ablation suite and the ``tokcompress demo`` command."""

from __future__ import annotations

from pathlib import Path

from tokcompress.hookspecs import hookimpl
from tokcompress.sources import ModelSource
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


@hookimpl
def tokcompress_register_model_sources():
    return [GroundingModel]


@hookimpl
def tokcompress_register_datasets():
    return [GroundingTestDataset]


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
