"""The plugin's ``--model_args``, validated: every error names the argument, the value and what is expected."""

from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tokcompress.errors import InputError

__all__ = ["PluginOptions", "parse_options"]

NO_PRUNER = "none"


class PluginOptions(BaseModel):
    """``pretrained`` (checkpoint folder or hub id, ``grounding``, ``tiny-<family>``), ``pruner`` (preset name,
    spec file, inline JSON spec or ``none``) with ``keep`` or ``ratio``; the rest as in `tokcompress.attach`
    and ``from_pretrained``."""

    model_config = ConfigDict(extra="forbid")

    pretrained: str = Field(min_length=1)
    pruner: Union[str, dict[str, Any]] = NO_PRUNER
    keep: Optional[int] = Field(None, ge=1)
    ratio: Optional[float] = Field(None, gt=0, le=1)
    profile: Optional[str] = None
    """Positional-bias profile for the spec's ``position_prior`` debiaser (a calibrated one, `tokcompress calibrate`)."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: Optional[str] = None
    """Default: ``cuda`` when available, else ``cpu``."""
    attn_implementation: Optional[str] = None
    max_new_tokens: int = Field(256, ge=1)
    """Generation length when the task's ``generation_kwargs`` name none."""
    batch_size: int = Field(1, ge=1)
    max_batch_size: Optional[int] = None
    """Passed by lmms-eval; unused."""

    @model_validator(mode="after")
    def _budget(self) -> "PluginOptions":
        pruned = self.pruner != NO_PRUNER
        if pruned and (self.keep is None) == (self.ratio is None):
            raise ValueError(f"pruner={self.pruner!r} needs exactly one of keep (visual tokens kept) or ratio "
                             f"(fraction kept); got keep={self.keep}, ratio={self.ratio}")
        if not pruned and (self.keep is not None or self.ratio is not None or self.profile is not None):
            raise ValueError("keep, ratio and profile apply to a pruner; with pruner=none leave them out")
        return self


def parse_options(kwargs: dict[str, Any]) -> PluginOptions:
    """`PluginOptions` from lmms-eval's parsed ``model_args`` (an inline JSON ``pruner`` string becomes a mapping)."""
    data = dict(kwargs)
    pruner = data.get("pruner")
    if isinstance(pruner, str) and pruner.lstrip().startswith("{"):
        try:
            data["pruner"] = json.loads(pruner)
        except json.JSONDecodeError as exc:
            raise InputError(f"model_args pruner: inline spec {pruner!r} is not valid JSON ({exc})") from None
    try:
        return PluginOptions.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "model_args"
            got = f" (got {err['input']!r})" if "input" in err and err["type"] != "missing" and err["loc"] else ""
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = f"unknown argument; expected one of {', '.join(PluginOptions.model_fields)}"
            lines.append(f"  {where}: {msg}{got}")
        raise InputError("invalid --model_args for model 'tokcompress':\n" + "\n".join(lines)) from None
