"""`ModelSource`: a named model a plugin ships (e.g. the trained grounding model), usable wherever a
checkpoint folder is accepted (``--model NAME``, suites' ``source: NAME``, lmms-eval ``pretrained=NAME``).

Model names resolve to local folders only: the library never downloads weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

__all__ = ["ModelSource"]


class ModelSource:
    """A ``from_pretrained`` folder shipped by a plugin. Subclasses set `name` and implement `path`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    calibration_images: ClassVar[Path | None] = None
    """A folder of images to measure the model's positional-bias profile on (``tokcompress calibrate``)."""
    calibration_prompt: ClassVar[str | None] = None
    """The prompt paired with those images."""

    @classmethod
    def path(cls) -> Path:
        """The local folder holding config, weights, tokenizer and processor."""
        raise NotImplementedError
