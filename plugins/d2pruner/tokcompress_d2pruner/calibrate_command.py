"""``tokcompress calibrate``: measure a positional-bias profile for the ``position_prior`` debiaser."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tokcompress.command import Command, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="checkpoint folder, tiny-<family> (e.g. tiny-llava), or a registered model source "
                             "(e.g. 'grounding', the trained model the grounding plugin ships)")
    parser.add_argument("--images", default=None,
                        help="folder of calibration images (searched recursively), 'samples' for the bundled ones "
                             "(default: the model source's own calibration images, when it ships some)")
    parser.add_argument("--prompt", default=None,
                        help="prompt text paired with every image (default: the model source's own calibration "
                             "prompt, else 'Describe this image.')")
    parser.add_argument("--layer", type=int, default=2, help="pruning layer K; attention is read at layer K-1 (default 2, the presets' K)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output path without suffix: writes OUT.safetensors, OUT.json, OUT.png")
    parser.add_argument("--num-images", type=positive_int, help="seeded random subset of this many images (default: all)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the image subset and of tiny model weights (default 42)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--fresh", action="store_true", help="ignore a saved calibration state and start over")
    parser.add_argument("--checkpoint-every", type=positive_int, default=25, help="save the running sums every N images (default 25)")
    parser.add_argument("--no-heatmap", action="store_true", help="skip OUT.png")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's own; 1 is fastest for tiny models on a busy machine)")


def run(args: argparse.Namespace) -> int:
    from tokcompress.catalog import get_catalog
    from tokcompress.study.datasets import BUNDLED_JSONL
    from tokcompress.study.suite import ModelEntry

    from .calibrate import DEFAULT_PROMPT, CalibrationSettings, calibrate, list_images

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    source = get_catalog().entries("model_source").get(args.model)
    own_images = getattr(source.cls, "calibration_images", None) if source else None
    if args.images is None and own_images is None:
        print(f"error: --images is required (model {args.model!r} ships no calibration images)", file=sys.stderr)
        return 2
    if args.images is None:
        folder = Path(own_images)
    else:
        folder = BUNDLED_JSONL.parent / "samples" if args.images == "samples" else Path(args.images)
    prompt = args.prompt or (getattr(source.cls, "calibration_prompt", None) if source else None) or DEFAULT_PROMPT
    model = ModelEntry(source=args.model, dtype=args.dtype, device=args.device, seed=args.seed)
    settings = CalibrationSettings(model, args.layer, prompt, args.seed, args.num_images)
    images = list_images(folder, args.num_images, args.seed)
    result = calibrate(settings, images, args.out, root=folder, fresh=args.fresh, checkpoint_every=args.checkpoint_every,
                       progress=not args.no_progress, heatmap=not args.no_heatmap)
    grids = ", ".join(f"{k} {tuple(v.shape)}" for k, v in result.maps.items())
    print(f"profile: {result.profile} ({result.images} images, {result.measured_now} measured now; {grids})")
    if result.heatmap:
        print(f"heat map: {result.heatmap}")
    return 0


class CalibrateCommand(Command):
    name = "calibrate"
    help = "measure a positional-bias profile (position_prior debiaser)"
    add_arguments = staticmethod(add_arguments)
    run = staticmethod(run)
