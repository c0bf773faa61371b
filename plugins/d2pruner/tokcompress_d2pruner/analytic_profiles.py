"""Generate the shipped *analytic* positional-bias profiles (not measurements).

Until calibration tooling measures real profiles, the registry ships closed-form maps with the
bias shapes reported for each model family:

- LLaVA-1.5: bottom-heavy. The last prompt token attends most to the last grid rows (the highest
  token indices): ``1 + 9 * exp((t - 1) / 0.15)`` with ``t`` the row-major position in [0, 1],
  so the last token gets 10x the first and the top half is nearly flat.
- InternVL-2.5 and Qwen2.5-VL: periphery-heavy. ``1 + 4 * exp(-d / 1.5)`` with ``d`` the distance
  in patches to the nearest border, so the border gets 5x the centre.

Constants are ours, chosen only to reproduce those qualitative shapes; each map is scaled to unit
sum (ratio debiasing depends only on the shape). Every file says ``"analytic": true``.

    python -m tokcompress_d2pruner.analytic_profiles [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import torch

from .profiles import save_profile

__all__ = ["ANALYTIC_PROFILES", "bottom_heavy", "periphery_heavy", "build_maps", "write_all", "main"]


def bottom_heavy(rows: int, cols: int, peak: float = 9.0, width: float = 0.15) -> torch.Tensor:
    """``[rows, cols]`` rising towards the last row-major positions (LLaVA's bias shape)."""
    n = rows * cols
    t = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    m = (1 + peak * torch.exp((t - 1) / width)).view(rows, cols)
    return (m / m.sum()).float()


def periphery_heavy(rows: int, cols: int, peak: float = 4.0, width: float = 1.5) -> torch.Tensor:
    """``[rows, cols]`` highest on the border, decaying inwards (InternVL/Qwen's bias shape)."""
    r = torch.arange(rows, dtype=torch.float64).view(-1, 1)
    c = torch.arange(cols, dtype=torch.float64).view(1, -1)
    d = torch.minimum(torch.minimum(r, rows - 1 - r), torch.minimum(c, cols - 1 - c))
    m = 1 + peak * torch.exp(-d / width)
    return (m / m.sum()).float()


# name -> (model id, description, {kind: (shape function, rows, cols)})
ANALYTIC_PROFILES: dict[str, tuple[str, str, dict[str, tuple[Callable[..., torch.Tensor], int, int]]]] = {
    "llava-1.5-analytic": (
        "llava-hf/llava-1.5-7b-hf",
        "ANALYTIC, NOT MEASURED. Bottom-heavy shape reported for LLaVA-1.5 (attention of the last "
        "prompt token concentrates on the last grid rows); 24x24 CLIP-336 grid; closed form "
        "1 + 9*exp((t-1)/0.15), t = row-major position in [0, 1], unit sum.",
        {"image": (bottom_heavy, 24, 24)},
    ),
    "internvl2.5-analytic": (
        "OpenGVLab/InternVL2_5-8B",
        "ANALYTIC, NOT MEASURED. Periphery-heavy shape reported for InternVL; one 16x16 map per "
        "view type (448px tile after pixel shuffle, and the thumbnail); closed form "
        "1 + 4*exp(-d/1.5), d = patches to the nearest border, unit sum.",
        {"tile": (periphery_heavy, 16, 16), "thumbnail": (periphery_heavy, 16, 16)},
    ),
    "qwen2.5-vl-analytic": (
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "ANALYTIC, NOT MEASURED. Periphery-heavy shape reported for Qwen-VL; 16x16 map resampled "
        "to each dynamic-resolution grid; closed form 1 + 4*exp(-d/1.5), d = patches to the "
        "nearest border, unit sum.",
        {"image": (periphery_heavy, 16, 16)},
    ),
}


def build_maps(name: str) -> dict[str, torch.Tensor]:
    """The maps of analytic profile `name`."""
    return {kind: fn(rows, cols) for kind, (fn, rows, cols) in ANALYTIC_PROFILES[name][2].items()}


def write_all(out_dir: Path) -> list[Path]:
    """Write every analytic profile into `out_dir`; return the safetensors paths."""
    written = []
    for name, (model, description, _) in ANALYTIC_PROFILES.items():
        meta = {
            "description": description,
            "analytic": True,
            "model": model,
            "layer": 1,
            "pruning_layer": 2,
            "num_images": None,
            "prompt": None,
            "seed": None,
        }
        written.append(save_profile(out_dir / name, build_maps(name), meta))
    return written


def main(argv: list[str] | None = None) -> int:
    from .plugin import PROFILES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROFILES, help="output directory")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
