"""Where a study's samples come from: a JSONL file (image, prompt, answer, optional box) or the bundled set.

Third parties add loaders (a benchmark's native format, say) by returning `Dataset` subclasses from the
``tokcompress_register_datasets`` hook; a suite picks one by ``name`` exactly like a pruner stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..component import Component, Params
from ..errors import InputError

__all__ = ["Dataset", "JsonlDataset", "SampleRecord", "Sample", "SamplesDataset", "read_jsonl", "BUNDLED_JSONL"]

BUNDLED_JSONL = Path(__file__).parent / "data" / "samples.jsonl"


@dataclass(frozen=True)
class Sample:
    """One prompt on one image, with optional labels.

    answer: acceptable answers (any one counts as correct), or None when unlabelled.
    box:    ground-truth box ``(x1, y1, x2, y2)`` in pixels of the image, or None.
    """

    id: str
    image: Path
    prompt: str
    answer: tuple[str, ...] | None = None
    box: tuple[float, float, float, float] | None = None

    def load_image(self):
        """The image as an RGB PIL image (loaded fully, so the file handle is closed)."""
        from PIL import Image

        with Image.open(self.image) as im:
            return im.convert("RGB")

    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` read from the file header."""
        from PIL import Image

        with Image.open(self.image) as im:
            return im.size

    def has(self, label: str) -> bool:
        return getattr(self, label) is not None


class SampleRecord(BaseModel):
    """One JSONL line. ``meta`` holds any extra information a dataset wants to carry along."""

    model_config = ConfigDict(extra="forbid")

    id: Optional[Union[str, int]] = None
    """Unique id within the file; defaults to the line number (1-based)."""
    image: str = Field(min_length=1)
    """Image path, relative to the dataset's image root (default: the JSONL file's folder)."""
    prompt: str = Field(min_length=1)
    answer: Optional[Union[str, list[str]]] = None
    """Reference answer, or a list of acceptable answers."""
    box: Optional[tuple[float, float, float, float]] = None
    """Ground-truth box ``[x1, y1, x2, y2]`` in image pixels (grounding)."""
    meta: dict[str, Any] = {}

    @field_validator("answer")
    @classmethod
    def _answers_not_empty(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("answer list is empty; omit the field for an unlabelled sample")
        return v

    @model_validator(mode="after")
    def _box_is_ordered(self):
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if not (x2 > x1 and y2 > y1):
                raise ValueError(f"box must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1, got {list(self.box)}")
        return self


def read_jsonl(path: Path, image_root: Path | None = None, limit: int | None = None) -> list[Sample]:
    """Samples from a JSONL file, every line validated; errors name the file, the line and the field."""
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read dataset {path}: {exc}") from None
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"dataset {path}, line {number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON: {exc}") from None
        try:
            rec = SampleRecord.model_validate(raw)
        except ValidationError as exc:
            details = "; ".join(
                f"field {'.'.join(str(p) for p in e['loc']) or '(line)'!r}: {e['msg']}"
                + (f" (got {e['input']!r})" if e["type"] != "missing" and "input" in e else "")
                for e in exc.errors()
            )
            raise InputError(f"{where}: {details}") from None
        sid = str(rec.id) if rec.id is not None else str(number)
        if sid in seen:
            raise InputError(f"{where}: duplicate id {sid!r} (first on line {seen[sid]})")
        seen[sid] = number
        image = (root / rec.image).resolve()
        if not image.is_file():
            raise InputError(f"{where}: field 'image': no such file {image} (image root {root})")
        answer = (rec.answer,) if isinstance(rec.answer, str) else (tuple(rec.answer) if rec.answer else None)
        samples.append(Sample(sid, image, rec.prompt, answer, rec.box))
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        raise InputError(f"dataset {path} holds no samples")
    return samples


class Dataset(Component):
    """A source of `Sample`s. Subclasses set `name`, `Params`, and implement `load`."""

    kind: ClassVar[str] = "dataset"

    def load(self, base_dir: Path) -> list[Sample]:
        """The samples, in a fixed order. Relative paths in params resolve against `base_dir` (the suite's folder)."""
        raise NotImplementedError

    def label(self) -> str:
        """Name under which rows are recorded."""
        return self.name


class JsonlParams(Params):
    path: str
    """JSONL file, one sample per line: ``{"id", "image", "prompt", "answer", "box"}``; relative to the suite."""
    image_root: Optional[str] = None
    """Folder the ``image`` paths are relative to; default: the JSONL file's folder."""
    limit: Optional[int] = Field(None, ge=1)
    """Use only the first `limit` samples (quick runs)."""
    label: Optional[str] = None
    """Name recorded in the results; default: the file's stem."""


class JsonlDataset(Dataset):
    """Samples from a JSONL file with image, prompt, and optional answer and box."""

    name = "jsonl"
    Params = JsonlParams

    def load(self, base_dir: Path) -> list[Sample]:
        path = _resolve(base_dir, self.params.path)
        root = _resolve(base_dir, self.params.image_root) if self.params.image_root else None
        return read_jsonl(path, root, self.params.limit)

    def label(self) -> str:
        return self.params.label or Path(self.params.path).stem


class SamplesParams(Params):
    limit: Optional[int] = Field(None, ge=1)
    """Use only the first `limit` of the bundled samples."""


class SamplesDataset(Dataset):
    """The bundled synthetic images (coloured shapes; shape-name answers and boxes) for smoke runs."""

    name = "samples"
    Params = SamplesParams

    def load(self, base_dir: Path) -> list[Sample]:
        return read_jsonl(BUNDLED_JSONL, None, self.params.limit)


def _resolve(base_dir: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p
