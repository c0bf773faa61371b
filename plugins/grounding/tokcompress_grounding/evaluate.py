"""Task accuracy of a grounding model through ``processor`` + ``model.generate``: the path users run.

Grounding is correct when the four numbers of the answer form a box with IoU >= 0.5 against the
ground truth; counting when the answer equals the count word (case and surrounding spaces ignored).

    python -m tokcompress_grounding.evaluate [--model DIR] [--n 1000] [--split test] [--template chat] [--record]
    python -m tokcompress_grounding.evaluate --pruner d2pruner --ratio 0.1      # pruned, through tokcompress.attach
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .data import GroundingSample, make_sample

__all__ = ["parse_box", "iou", "is_correct", "predict", "EvalResult", "evaluate_samples", "evaluate_model",
           "accuracy_with_pruners"]

IOU_THRESHOLD = 0.5
_INT = re.compile(r"-?\d+")


def parse_box(text: str) -> tuple[int, int, int, int] | None:
    """The first four integers of `text` as ``(x1, y1, x2, y2)``, or None when there are fewer than four."""
    numbers = _INT.findall(text)
    return None if len(numbers) < 4 else tuple(int(n) for n in numbers[:4])  # type: ignore[return-value]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes; a degenerate box scores 0."""
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def is_correct(sample: GroundingSample, text: str) -> bool:
    """Whether a generated answer solves the sample (grounding: IoU >= 0.5; counting: exact word)."""
    if sample.task == "grounding":
        box = parse_box(text)
        return box is not None and iou(box, sample.box) >= IOU_THRESHOLD
    return text.strip().lower() == sample.answer


def predict(model, processor, samples: Sequence[GroundingSample], template: str = "chat", batch_size: int = 32) -> list[str]:
    """Greedy answers, decoded without special tokens, batched with left padding."""
    import torch

    from .model import format_prompt

    processor.tokenizer.padding_side = "left"
    answers: list[str] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        inputs = processor(
            images=[s.image for s in chunk],
            text=[format_prompt(s.prompt, template) for s in chunk],
            padding=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1] :]
        answers += processor.tokenizer.batch_decode(new, skip_special_tokens=True)
    return answers


@dataclass(frozen=True)
class EvalResult:
    grounding: float
    counting: float
    n_grounding: int
    n_counting: int
    seconds: float

    def as_dict(self) -> dict:
        return {
            "grounding_acc": round(self.grounding, 4),
            "counting_acc": round(self.counting, 4),
            "n_grounding": self.n_grounding,
            "n_counting": self.n_counting,
            "seconds": round(self.seconds, 1),
        }


def evaluate_samples(model, processor, samples: Sequence[GroundingSample], template: str = "chat") -> EvalResult:
    t0 = time.perf_counter()
    answers = predict(model, processor, samples, template)
    hits = {"grounding": [0, 0], "counting": [0, 0]}
    for s, a in zip(samples, answers):
        hits[s.task][0] += int(is_correct(s, a))
        hits[s.task][1] += 1
    (gh, gn), (ch, cn) = hits["grounding"], hits["counting"]
    return EvalResult(gh / max(gn, 1), ch / max(cn, 1), gn, cn, time.perf_counter() - t0)


def evaluate_model(model, processor, n: int = 1000, split: str = "test", seed: int = 0, template: str = "chat") -> EvalResult:
    """Accuracy on the first `n` samples of a generated split (half grounding, half counting)."""
    samples = [make_sample(seed, split, i) for i in range(n)]
    return evaluate_samples(model, processor, samples, template)


def accuracy_with_pruners(model, processor, samples: Sequence[GroundingSample], presets: Sequence[str], *,
                          keep: int | None = None, ratio: float | None = None, template: str = "chat") -> dict[str, EvalResult]:
    """Task accuracy on `samples` unpruned (key ``"none"``) and with each preset attached through
    `tokcompress.attach` at the given budget, in that order."""
    import tokcompress

    results = {"none": evaluate_samples(model, processor, samples, template)}
    for preset in presets:
        with tokcompress.attach(model, preset, keep=keep, ratio=ratio):
            results[preset] = evaluate_samples(model, processor, samples, template)
    return results


def main(argv: list[str] | None = None) -> int:
    import torch

    from . import DEFAULT_MODEL_DIR
    from .model import TEMPLATES, load_pretrained

    parser = argparse.ArgumentParser(prog="python -m tokcompress_grounding.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--n", type=int, default=1000, help="samples (half grounding, half counting)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--seed", type=int, default=0, help="data generator seed")
    parser.add_argument("--template", default="chat", choices=sorted(TEMPLATES))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest on a busy machine)")
    parser.add_argument("--record", action="store_true", help="also store the result under the split's name in MODEL/training.json")
    parser.add_argument("--pruner", help="evaluate with this pruner attached (preset name or spec file), via tokcompress.attach")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--keep", type=int, help="visual tokens kept (with --pruner)")
    budget.add_argument("--ratio", type=float, help="fraction of visual tokens kept (with --pruner)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    if (args.keep is not None or args.ratio is not None) != (args.pruner is not None):
        parser.error("--pruner needs --keep or --ratio, and they need --pruner")
    if args.record and args.pruner:
        parser.error("--record stores the unpruned accuracy; drop --pruner")
    torch.set_num_threads(args.threads)
    model, processor = load_pretrained(args.model)
    if args.pruner:
        import tokcompress

        with tokcompress.attach(model, args.pruner, keep=args.keep, ratio=args.ratio):
            result = evaluate_model(model, processor, args.n, args.split, args.seed, args.template)
    else:
        result = evaluate_model(model, processor, args.n, args.split, args.seed, args.template)
    line = {"split": args.split, "seed": args.seed, "template": args.template, **result.as_dict()}
    if args.pruner:
        line |= {"pruner": args.pruner, "keep": args.keep, "ratio": args.ratio}
    print(json.dumps({"model": str(args.model), **line}))
    if args.record:
        path = Path(args.model) / "training.json"
        record = json.loads(path.read_text()) if path.is_file() else {}
        record[args.split] = line
        path.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
