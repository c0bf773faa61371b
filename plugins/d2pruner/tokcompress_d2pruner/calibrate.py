"""Measure a positional-bias profile: mean last-token attention per visual position, per grid kind.

For each calibration image the model runs one prefill with the prompt; at layer K-1 the
integration's attention probe gives the head-averaged attention the last prompt token pays to
every visual token (post-RoPE softmax over the whole sequence: the quantity D2Pruner's
``position_prior`` debiaser divides by). The values are laid onto each image's grid segments by
kind (``image``, ``base``/``crop``, ``tile``/``thumbnail``, ``frame``) and averaged over images
in float64. The capture uses a recorder pruner at placement ``layer`` K with keep 1, so layers >= K
process almost nothing: calibration costs about K/L of a prefill per image.

Deterministic given the seed (image subset and, for tiny models, the weights). Resumable: running
sums are checkpointed beside the output (``NAME.calib-state.*``); a rerun with the same settings
skips the images already measured, and adding images to the folder only measures the new ones.
Grids of one kind with different shapes (LLaVA-NeXT crops) are averaged per shape, then resampled
bilinearly to the most frequent shape and combined weighted by image count. Off-grid tokens
(newlines) are recorded as the ``offgrid`` vector only when every image has the same number.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from tokcompress.errors import InputError, TokcompressError
from tokcompress.layout import Layout, OffGrid
from tokcompress.selectors.base import Selector, rank_descending
from tokcompress.study.datasets import Sample
from tokcompress.study.suite import ModelEntry

from .profiles import resample_map, save_profile

__all__ = ["CalibrationSettings", "Accumulator", "calibrate", "list_images", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEFAULT_PROMPT = "Describe this image."
"""The paper's calibration prompt is not published (method notes, Step 0: U); a generic request."""


class CalibrationError(TokcompressError, ValueError):
    """Calibration cannot proceed (no visual tokens reached the probe, a saved state with other settings...)."""


@dataclass(frozen=True)
class CalibrationSettings:
    model: ModelEntry
    layer: int  # pruning layer K; attention comes from layer K-1
    prompt: str = DEFAULT_PROMPT
    seed: int = 42
    num_images: int | None = None

    def key(self) -> dict[str, Any]:
        """What must match for a saved state to be resumed."""
        return {"model": self.model.model_dump(mode="json", exclude={"label", "gpus", "threads"}), "layer": self.layer,
                "prompt": self.prompt, "seed": self.seed}


def list_images(folder: Path, num_images: int | None, seed: int) -> list[Path]:
    """Image files under `folder` (sorted by relative path), or a seeded random subset of `num_images`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--images: {folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"--images: no {'/'.join(IMAGE_SUFFIXES)} files under {folder}")
    if num_images is not None and num_images < len(files):
        files = random.Random(seed).sample(files, num_images)
    return files


# -- capturing -----------------------------------------------------------------------------------


class _Recorder(Selector):
    """Keeps the first valid token and remembers what the integration handed over (attention, layout)."""

    name = "calibration_recorder"

    def needs_scores(self) -> bool:
        return False

    def requires(self) -> frozenset[str]:
        return frozenset({"attention"})

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.Tensor, Layout | None]] = []

    def select(self, tokens, scores, graph, keep):
        valid = tokens.valid_mask()
        layouts = tokens.layouts() or (None,) * tokens.batch_size
        for b in range(tokens.batch_size):
            self.seen.append((tokens.attention[b][valid[b]].detach().double().cpu(), layouts[b]))
        return rank_descending(valid.float(), valid)[:, :keep]


def capture_attention(model: Any, inputs: dict[str, torch.Tensor], layer: int) -> list[tuple[torch.Tensor, Layout | None]]:
    """``[(attention [N], layout)]`` per row: last-token head-mean attention at layer ``layer - 1``."""
    import tokcompress
    from tokcompress.pruner import Pruner
    from tokcompress.spec import load_spec

    recorder = _Recorder()
    spec = load_spec({"name": "calibration", "apply": {"placement": "layer", "layer": layer}, "selector": "uniform"})
    with tokcompress.attach(model, Pruner(spec, selector=recorder), keep=1):
        with torch.inference_mode():
            model(**inputs, use_cache=False, logits_to_keep=1)
    if not recorder.seen:
        raise CalibrationError("the model ran without visual tokens reaching the pruner; is the image in the prompt?")
    return recorder.seen


# -- accumulating ----------------------------------------------------------------------------------


@dataclass
class Accumulator:
    """Float64 sums of attention per (kind, rows, cols) and image counts; off-grid vectors while their length is constant."""

    sums: dict[tuple[str, int, int], torch.Tensor] = field(default_factory=dict)
    counts: dict[tuple[str, int, int], int] = field(default_factory=dict)
    offgrid_sum: torch.Tensor | None = None
    offgrid_ok: bool = True
    images: int = 0

    def add(self, attention: torch.Tensor, layout: Layout | None) -> None:
        attention = attention.double()
        if layout is None:
            layout = _square_or_fail(attention.numel())
        if layout.num_tokens != attention.numel():
            raise CalibrationError(f"layout {layout.describe()} has {layout.num_tokens} tokens, attention has {attention.numel()}")
        off: list[torch.Tensor] = []
        start = 0
        for seg in layout.segments:
            values = attention[start:start + seg.num_tokens]
            start += seg.num_tokens
            if isinstance(seg, OffGrid):
                off.append(values)
                continue
            grid = values.view(seg.rows, seg.cols + int(seg.newline))
            if seg.newline:
                off.append(grid[:, -1])
                grid = grid[:, :-1]
            key = (seg.kind, seg.rows, seg.cols)
            self.sums[key] = self.sums.get(key, torch.zeros(seg.rows, seg.cols, dtype=torch.float64)) + grid
            self.counts[key] = self.counts.get(key, 0) + 1
        vector = torch.cat(off) if off else None
        if vector is not None and self.offgrid_ok:
            if self.offgrid_sum is None and self.images == 0:
                self.offgrid_sum = vector.clone()
            elif self.offgrid_sum is not None and self.offgrid_sum.numel() == vector.numel():
                self.offgrid_sum += vector
            else:
                self.offgrid_ok, self.offgrid_sum = False, None
        elif vector is None and self.offgrid_sum is not None:
            self.offgrid_ok, self.offgrid_sum = False, None
        self.images += 1

    def maps(self) -> dict[str, torch.Tensor]:
        """Mean map per kind (float32); several shapes of one kind are resampled to the most frequent one."""
        out: dict[str, torch.Tensor] = {}
        for kind in sorted({k for k, _, _ in self.sums}):
            shapes = {(h, w): (self.sums[(kind, h, w)], self.counts[(kind, h, w)]) for (k, h, w) in self.sums if k == kind}
            ref = max(shapes, key=lambda s: (shapes[s][1], s[0] * s[1], s))
            total = sum(c for _, c in shapes.values())
            combined = torch.zeros(ref, dtype=torch.float64)
            for (h, w), (s, c) in sorted(shapes.items()):
                mean = s / c
                combined += (mean if (h, w) == ref else resample_map(mean.float(), *ref).double()) * (c / total)
            out[kind] = combined.float()
        if self.offgrid_ok and self.offgrid_sum is not None and self.images:
            out["offgrid"] = (self.offgrid_sum / self.images).float()
        return out

    # -- state -------------------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        t = {f"sum/{k}/{h}x{w}": v for (k, h, w), v in self.sums.items()}
        if self.offgrid_sum is not None:
            t["offgrid_sum"] = self.offgrid_sum
        return t

    def meta(self) -> dict[str, Any]:
        return {"counts": {f"{k}/{h}x{w}": c for (k, h, w), c in self.counts.items()}, "offgrid_ok": self.offgrid_ok,
                "images": self.images}

    @classmethod
    def restore(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> "Accumulator":
        acc = cls(offgrid_ok=meta["offgrid_ok"], images=meta["images"], offgrid_sum=tensors.get("offgrid_sum"))
        for name, c in meta["counts"].items():
            kind, shape = name.rsplit("/", 1)
            h, w = (int(x) for x in shape.split("x"))
            acc.sums[(kind, h, w)] = tensors[f"sum/{name}"]
            acc.counts[(kind, h, w)] = c
        return acc


def _square_or_fail(n: int) -> Layout:
    try:
        return Layout.square(n)
    except ValueError:
        raise CalibrationError(f"the integration gave no layout for {n} visual tokens, and {n} is not a square grid") from None


class _State:
    """``NAME.calib-state.safetensors`` + ``.json``: running sums and the images they cover."""

    def __init__(self, out: Path) -> None:
        base = Path(str(out.with_suffix("") if out.suffix == ".safetensors" else out) + ".calib-state")
        self.tensors_path, self.json_path = base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")

    def load(self, settings: CalibrationSettings) -> tuple[Accumulator, list[str]] | None:
        if not self.json_path.is_file():
            return None
        from safetensors.torch import load_file

        meta = json.loads(self.json_path.read_text())
        if meta["settings"] != settings.key():
            raise CalibrationError(
                f"calibration state {self.json_path} was made with other settings ({meta['settings']}); "
                f"pass --fresh to start over, or another -o"
            )
        tensors = load_file(str(self.tensors_path)) if self.tensors_path.is_file() else {}
        return Accumulator.restore(tensors, meta["accumulator"]), list(meta["done"])

    def save(self, settings: CalibrationSettings, acc: Accumulator, done: list[str]) -> None:
        from safetensors.torch import save_file

        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_t = self.tensors_path.with_name(self.tensors_path.name + ".tmp")
        tmp_j = self.json_path.with_name(self.json_path.name + ".tmp")
        save_file({k: v.contiguous() for k, v in acc.tensors().items()}, str(tmp_t))
        tmp_j.write_text(json.dumps({"settings": settings.key(), "accumulator": acc.meta(), "done": done}))
        tmp_t.replace(self.tensors_path)  # both renames are atomic; the json (written last) decides what counts
        tmp_j.replace(self.json_path)

    def clear(self) -> None:
        for p in (self.tensors_path, self.json_path):
            p.unlink(missing_ok=True)


# -- the whole run ----------------------------------------------------------------------------------


@dataclass
class CalibrationResult:
    profile: Path  # NAME.safetensors
    heatmap: Path | None
    maps: dict[str, torch.Tensor]
    images: int
    measured_now: int


def calibrate(
    settings: CalibrationSettings,
    images: list[Path],
    out: Path,
    *,
    root: Path | None = None,
    fresh: bool = False,
    checkpoint_every: int = 25,
    progress: bool = True,
    heatmap: bool = True,
    loader: Callable[[ModelEntry], Any] | None = None,
) -> CalibrationResult:
    """Measure the profile over `images` and write ``out.safetensors``, ``out.json`` and ``out.png``."""
    from tokcompress.study.models import load_model

    if settings.layer < 1:
        raise InputError(f"--layer must be >= 1 (attention is read at layer K-1), got {settings.layer}")
    out = Path(out)
    root = Path(root) if root is not None else None
    state = _State(out)
    if fresh:
        state.clear()
    restored = state.load(settings)
    acc, done = restored if restored else (Accumulator(), [])
    done_set = set(done)
    names = [str(p.relative_to(root)) if root else str(p) for p in images]
    todo = [(n, p) for n, p in zip(names, images) if n not in done_set]
    loaded = (loader or load_model)(settings.model) if todo else None
    if loaded is not None:
        n_layers = _num_layers(loaded.model)
        if n_layers is not None and settings.layer >= n_layers:
            raise InputError(f"--layer {settings.layer}: the model's language model has {n_layers} layers; K must be < {n_layers}")
    with _bar(progress, len(todo), len(done)) as advance:
        for i, (name, path) in enumerate(todo, start=1):
            sample = Sample(id=name, image=path, prompt=settings.prompt)
            for attention, layout in capture_attention(loaded.model, loaded.prepare(sample), settings.layer):
                acc.add(attention, layout)
            done.append(name)
            if i % checkpoint_every == 0 or i == len(todo):
                state.save(settings, acc, done)
            advance(name)
    if not acc.images:
        raise CalibrationError("no image was measured")
    maps = acc.maps()
    meta = {
        "description": (f"Measured: mean head-averaged attention of the last prompt token to each visual position "
                        f"at layer {settings.layer - 1} over {acc.images} images."),
        "analytic": False,
        "model": settings.model.source,
        "layer": settings.layer - 1,
        "pruning_layer": settings.layer,
        "num_images": acc.images,
        "prompt": settings.prompt,
        "seed": settings.seed,
    }
    path = save_profile(out, maps, meta)
    png = None
    if heatmap:
        try:
            png = plot_profile(maps, path.with_suffix(".png"), f"{settings.model.source}, layer {settings.layer - 1}, "
                               f"{acc.images} images")
        except ImportError:  # the profile is written; the picture needs the optional plotting extra
            print("note: matplotlib is not installed (pip install 'tokcompress[plots]'): no heat map written",
                  file=sys.stderr)
    return CalibrationResult(path, png, maps, acc.images, len(todo))


def _num_layers(model: Any) -> int | None:
    cfg = getattr(model.config, "text_config", None) or model.config
    return getattr(cfg, "num_hidden_layers", None)


class _bar:
    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.enabled, self.total, self.done, self.progress = enabled, total, done, None

    def __enter__(self):
        if not self.enabled or not self.total:
            return lambda name: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]calibrating"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[name]}"),
                                 console=Console(stderr=True))
        self.progress.start()
        note = f" ({self.done} done before)" if self.done else ""
        tid = self.progress.add_task(note, total=self.total, name="")
        return lambda name: self.progress.update(tid, advance=1, name=name)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def plot_profile(maps: dict[str, torch.Tensor], path: Path, title: str) -> Path:
    """One heat map per grid kind (row 0 at the top, as in the image)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    kinds = [k for k, v in maps.items() if v.dim() == 2]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.8), dpi=100, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        im = ax.imshow(maps[kind].numpy(), cmap="viridis", interpolation="nearest")
        ax.set_title(f"{kind} {maps[kind].shape[0]}x{maps[kind].shape[1]}", fontsize=9)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"positional bias: {title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
