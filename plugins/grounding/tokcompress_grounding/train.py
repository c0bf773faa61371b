"""Train the grounding model on CPU: deterministic given the seeds, resumable from its checkpoint.

    python -m tokcompress_grounding.train --out plugins/grounding/tokcompress_grounding/model [--threads 2] [--seed 0]

Three stages (docs/grounding-model.md). Stage 1 (``--vision-steps``) trains the vision tower and projector
alone on the dense per-patch loss of `supervision`. Stage 2 freezes the vision tower and trains the rest
on packed questions (several grounding and counting questions per image in one sequence, see
`encode_groups`) with the answer cross-entropy, the patch loss and an attention loss on a few LM heads
(`attention_target`). Stage 3 (``--counting-steps``) does the same on a counting-heavy mix, with a
counting head supervised too. Images stream from the generator
(a pure function of seed, split and index), so a run needs no data on disk and a resumed run sees
exactly the batches an uninterrupted one would. AdamW, per-stage warm-up and cosine decay, fp32. Every
``--ckpt-every`` steps the weights, patch heads and optimizer state are written (safetensors + JSON) to
``OUT/checkpoint``; rerunning the same command resumes there. At the end the model is saved to OUT as a
``from_pretrained`` folder with ``training.json`` (settings, log, validation accuracy) and the
checkpoint is removed.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .data import Question, Scene, make_group, make_sample
from .model import EOS_ID, IMAGE_TOKEN_ID, PAD_ID, TEMPLATES, ModelSize, format_prompt

__all__ = ["TrainConfig", "parse_attention_heads", "in_counting_stage", "Group", "batch_groups", "vision_batch", "encode_groups", "learning_rate", "command_line", "train"]

IGNORE = -100
_VISION_OFFSET = 10_000_000
_TEMPLATE_ORDER = tuple(sorted(TEMPLATES))


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    """Weight initialisation seed."""
    data_seed: int = 0
    """Generator seed of the training stream (validation uses the same seed, split "val")."""
    steps: int = 9000
    """All steps, stages 1 (`vision_steps`) and 3 (`counting_steps`) included."""
    batch: int = 8
    """Images per step."""
    grounding_per_image: int = 6
    counting_per_image: int = 6
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    """Cosine decay ends at ``lr * min_lr_ratio``."""
    vision_steps: int = 1500
    """Stage 1: the first steps train the vision tower and projector alone on the patch loss, with
    `vision_batch` images each (about 5x cheaper per image than a full step), so the LM starts from
    visual tokens that already tell shapes apart. Stage 2 freezes the vision tower (as LLaVA does):
    unfrozen, the gradients of the freshly initialised LM undid much of stage 1 (patch loss 0.44 ->
    2.6 within 150 steps)."""
    vision_batch: int = 32
    counting_steps: int = 3000
    """Stage 3 (0: off): the last steps of the run train on a counting-heavy mix,
    `counting_stage_grounding` + `counting_stage_counting` questions per image, with their own warm-up and
    decay and the `counting_heads` supervised. Stage 2's mix teaches grounding and leaves counting at about
    half right; 3000 steps of 2 + 10 questions per image with a counting head took test counting from
    43.2% to 83.4% and grounding from 90.2% to 99.4% (docs/grounding-model.md)."""
    counting_stage_grounding: int = 2
    counting_stage_counting: int = 10
    patch_weight: float = 1.0
    """Weight of the dense per-patch loss (`supervision.PatchHeads`) beside the answer loss (0: off)."""
    attention_weight: float = 1.0
    """Weight of the attention loss of stages 2 and 3 (`attention_target`, 0: off): at the positions that
    predict an answer, the `grounding_heads` are pulled onto the asked-about shape's patches and, in
    stage 3, the `counting_heads` onto BOS and the counted shapes, in equal shares."""
    grounding_heads: str = "1:0,2:0"
    """``layer:head`` pairs (0-based) of the LM supervised on grounding questions; "" for none."""
    counting_heads: str = "1:1"
    """``layer:head`` pairs supervised on counting questions, in stage 3 only (in stage 2, where grounding is
    still being learned, a counting head showed no gain); "" for none. Needs ``counting_steps > 0``. It
    learns the BOS share ``1 / (count + 1)`` almost exactly (docs/grounding-model.md), though its gain
    over no head was not measured at 3000 counting steps."""
    counting_keys: str = "anchor"
    """Where a counting head's target puts each counted shape's share: "area" (spread over its patches)
    or "anchor" (its top-left patch), see `attention_target`."""
    warmup: int = 100
    weight_decay: float = 0.01
    clip: float = 1.0
    """Gradient-norm clipping."""
    eval_every: int = 1000
    eval_n: int = 200
    ckpt_every: int = 100
    threads: int = 1
    """torch CPU threads. 1 by default: on a shared machine two spinning OpenMP threads ran 5x slower."""
    init_std: float = 0.05
    """Initialisation std of the LM and projector weights (transformers' 0.02 is tuned for wide models)."""
    size: ModelSize = field(default_factory=ModelSize)

    def __post_init__(self):
        """Range checks, so that a bad setting fails here and not after stage 1."""
        from .attention_target import check_counting_keys

        for name in ("steps", "batch", "vision_batch", "grounding_per_image", "eval_every", "eval_n", "ckpt_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("counting_per_image", "counting_stage_grounding", "counting_stage_counting"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.vision_steps < self.steps:
            raise ValueError(f"vision_steps must be in 0 .. steps - 1 ({self.steps - 1}), got {self.vision_steps}")
        if not 0 <= self.counting_steps < self.steps - self.vision_steps:
            raise ValueError(f"counting_steps must be in 0 .. steps - vision_steps - 1 "
                             f"({self.steps - self.vision_steps - 1}: stage 2 needs a step), got {self.counting_steps}")
        check_counting_keys(self.counting_keys)
        parse_attention_heads(self)


def parse_attention_heads(cfg: TrainConfig) -> dict[str, list[tuple[int, int]]]:
    """Task -> the ``layer:head`` pairs of `cfg.grounding_heads` / `cfg.counting_heads`, checked against the LM's size."""
    out = {}
    for task in ("grounding", "counting"):
        text = getattr(cfg, f"{task}_heads")
        pairs = []
        for item in filter(None, text.split(",")):
            try:
                layer, head = (int(v) for v in item.split(":"))
            except ValueError:
                raise ValueError(f"{task}_heads: expected comma-separated layer:head pairs, got {text!r}") from None
            if not (0 <= layer < cfg.size.text_layers and 0 <= head < cfg.size.text_heads):
                raise ValueError(f"{task}_heads: {item!r} is outside the LM's {cfg.size.text_layers} layers x "
                                 f"{cfg.size.text_heads} heads")
            pairs.append((layer, head))
        out[task] = pairs
    if out["counting"] and not cfg.counting_steps:
        raise ValueError(f"counting_heads {cfg.counting_heads!r} are supervised in the counting stage, which is off "
                         "(counting_steps 0): set counting_steps > 0 or counting_heads ''")
    return out


def in_counting_stage(cfg: TrainConfig, step: int) -> bool:
    """Whether 0-based `step` is in stage 3, the counting stage."""
    return bool(cfg.counting_steps) and step >= cfg.steps - cfg.counting_steps


def stage_bounds(cfg: TrainConfig, step: int) -> tuple[int, int]:
    """``(first, end)`` steps of the stage `step` is in: vision, full, or counting (when on)."""
    starts = [0, cfg.vision_steps] + ([cfg.steps - cfg.counting_steps] if cfg.counting_steps else [])
    first = max(s for s in starts if s <= step)
    return first, min([s for s in starts if s > first] + [cfg.steps])


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Learning rate at 0-based `step`. Each stage (vision steps, full steps, counting steps) has its own
    linear warm-up followed by a cosine from `lr` to ``lr * min_lr_ratio``: the LM starts at stage 2."""
    first, end = stage_bounds(cfg, step)
    length = end - first
    step -= first
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, length - cfg.warmup)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class Group:
    """One training image with the questions packed after it, in one prompt template."""

    index: int
    image: object
    scene: Scene
    questions: tuple[Question, ...]
    template: str


def batch_groups(cfg: TrainConfig, step: int) -> list[Group]:
    """The groups of training `step`: images ``step * batch ..``, a pure function of the data seed and step."""
    out = []
    mix = ((cfg.counting_stage_grounding, cfg.counting_stage_counting) if in_counting_stage(cfg, step)
           else (cfg.grounding_per_image, cfg.counting_per_image))
    for slot in range(cfg.batch):
        index = step * cfg.batch + slot
        image, scene, questions = make_group(cfg.data_seed, "train", index, *mix)
        out.append(Group(index, image, scene, tuple(questions), _TEMPLATE_ORDER[index % len(_TEMPLATE_ORDER)]))
    return out


def vision_batch(cfg: TrainConfig, step: int) -> tuple[list, list[Scene]]:
    """Images and scenes of stage-1 `step`: train images from index 10^7 on, apart from the full steps' images."""
    pairs = [make_group(cfg.data_seed, "train", _VISION_OFFSET + step * cfg.vision_batch + slot, 0, 0)[:2]
             for slot in range(cfg.vision_batch)]
    return [image for image, _ in pairs], [scene for _, scene in pairs]


def encode_groups(processor, groups: list[Group]) -> dict:
    """Packed model inputs: per row the prompt prefix and image once, then each question + answer + EOS.

    A 4-D boolean mask lets each question segment see the prefix and itself only (causally), and its
    position ids restart where the image ends, so every segment computes exactly what the question
    alone would (the prefix, being first, never sees a question). Labels are -100 except each
    answer's tokens and its EOS. The prompt encoding is the processor's; the mask, not padding, is
    what separates the segments.
    """
    import numpy as np
    import torch

    tokenizer = processor.tokenizer
    rows, pixels = [], []
    for g in groups:
        first = processor(images=[g.image], text=[format_prompt(g.questions[0].prompt, g.template)])
        full = list(first["input_ids"][0])
        end = max(i for i, t in enumerate(full) if t == IMAGE_TOKEN_ID) + 1
        prefix = full[:end]
        segments = []
        for q in g.questions:
            ids = tokenizer(format_prompt(q.prompt, g.template))["input_ids"]
            cut = ids.index(IMAGE_TOKEN_ID) + 1
            if ids[: cut - 1] != prefix[: cut - 1]:
                raise ValueError(f"template {g.template!r}: prompt prefix differs between questions")
            answer = tokenizer(q.answer, add_special_tokens=False)["input_ids"]
            segments.append((ids[cut:], answer + [EOS_ID]))
        if full[end:] != segments[0][0]:
            raise ValueError("tokenizer and processor disagree on the question tokens")
        rows.append((prefix, segments))
        pixels.append(first["pixel_values"][0])
    width = max(len(p) + sum(len(q) + len(a) for q, a in segs) for p, segs in rows)
    n = len(rows)
    ids = torch.full((n, width), PAD_ID, dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    positions = torch.zeros((n, width), dtype=torch.long)
    segment = torch.full((n, width), -1, dtype=torch.long)  # 0 prefix, 1.. questions, -1 padding
    for r, (prefix, segs) in enumerate(rows):
        ids[r, : len(prefix)] = torch.tensor(prefix)
        positions[r, : len(prefix)] = torch.arange(len(prefix))
        segment[r, : len(prefix)] = 0
        at = len(prefix)
        for k, (question, answer) in enumerate(segs, start=1):
            tokens = question + answer
            span = slice(at, at + len(tokens))
            ids[r, span] = torch.tensor(tokens)
            labels[r, at + len(question) : at + len(tokens)] = torch.tensor(answer)
            positions[r, span] = torch.arange(len(prefix), len(prefix) + len(tokens))
            segment[r, span] = k
            at += len(tokens)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same = segment[:, :, None] == segment[:, None, :]
    sees_prefix = (segment == 0)[:, None, :].expand(n, width, width)
    mask = causal & (same | sees_prefix)
    # padding rows see the prefix (never an empty row: SDPA would give NaN); nothing attends to padding
    mask = mask & ((segment[:, None, :] != -1) | same)
    return {
        "input_ids": ids,
        "attention_mask": mask[:, None],
        "position_ids": positions,
        "pixel_values": torch.as_tensor(np.stack(pixels)),
        "labels": labels,
    }


# -- checkpoints: safetensors + JSON, no pickle ---------------------------------------------------------


def _save_checkpoint(model, heads, optimizer, ckpt: Path, progress: dict) -> None:
    """Weights (save_pretrained), patch heads and AdamW moments (safetensors), `progress` (JSON), swapped in atomically."""
    from safetensors.torch import save_file

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    save_file(heads.state_dict(), tmp / "patch_heads.safetensors")
    state = optimizer.state_dict()["state"]
    tensors = {f"{i}.{k}": v.contiguous() for i, st in state.items() for k, v in st.items()}
    save_file(tensors, tmp / "optimizer.safetensors")
    (tmp / "progress.json").write_text(json.dumps(progress))
    if ckpt.exists():
        shutil.rmtree(ckpt)
    tmp.rename(ckpt)


def _load_checkpoint(model, heads, optimizer, ckpt: Path) -> dict:
    from safetensors.torch import load_file
    from transformers import LlavaForConditionalGeneration

    saved = LlavaForConditionalGeneration.from_pretrained(ckpt, dtype="float32")
    model.load_state_dict(saved.state_dict())
    heads.load_state_dict(load_file(ckpt / "patch_heads.safetensors"))
    flat = load_file(ckpt / "optimizer.safetensors")
    state: dict[int, dict] = {}
    for key, value in flat.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    return json.loads((ckpt / "progress.json").read_text())


def command_line(cfg: TrainConfig, out: Path) -> str:
    """The command that reproduces `cfg`: the output folder plus every setting that differs from the default."""
    defaults = asdict(TrainConfig())
    flat = {**{k: v for k, v in asdict(cfg).items() if k != "size"}, **asdict(cfg.size)}
    flat_defaults = {**{k: v for k, v in defaults.items() if k != "size"}, **defaults["size"]}
    flags = [f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in flat.items() if v != flat_defaults[k]]
    return " ".join(["python -m tokcompress_grounding.train --out", str(out), *flags])


# -- the loop ---------------------------------------------------------------------------------------------


def train(cfg: TrainConfig, out: Path, echo=print, stop_after: int | None = None) -> dict | None:
    """Train (or resume) and save the final model to `out`; returns the summary written to training.json.

    stop_after: leave after this many steps of this session with a checkpoint written (None: run to the
    end); the next call resumes. Returns None when it stopped early.
    """
    import torch

    from .attention_target import AttentionTarget, attention_queries
    from .evaluate import evaluate_samples
    from .model import build_model, build_processor, save_pretrained
    from .supervision import build_heads, patch_targets

    torch.set_num_threads(cfg.threads)
    out = Path(out)
    ckpt = out / "checkpoint"
    model = build_model(cfg.size, seed=cfg.seed, init_std=cfg.init_std)
    processor = build_processor()
    heads = build_heads(model, processor.tokenizer)
    visual = {}  # the projector output of the current batch: the visual tokens the LM sees
    model.model.multi_modal_projector.register_forward_hook(lambda module, args, output: visual.update(tokens=output))
    attention = None
    if cfg.attention_weight:
        attention = AttentionTarget(model.model.language_model, parse_attention_heads(cfg))
    named = [*model.named_parameters(), *heads.named_parameters(prefix="patch_heads")]
    decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    progress = {"next_step": 0, "log": [], "window": [], "elapsed_s": 0.0}
    if (ckpt / "progress.json").is_file():
        progress = _load_checkpoint(model, heads, optimizer, ckpt)
        echo(json.dumps({"resumed_at_step": progress["next_step"]}))
    start, log, window = progress["next_step"], progress["log"], progress["window"]
    val = [make_sample(cfg.data_seed, "val", i) for i in range(cfg.eval_n)]
    t_start = time.perf_counter() - progress["elapsed_s"]
    for step in range(start, cfg.steps):
        model.train()
        model.model.vision_tower.requires_grad_(step < cfg.vision_steps)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        if step < cfg.vision_steps:  # stage 1: vision tower and projector alone, patch loss only
            images, scenes = vision_batch(cfg, step)
            pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
            model.model.get_image_features(pixel_values=pixels)
            answer_loss = attention_loss = torch.zeros(())
        else:
            groups = batch_groups(cfg, step)
            scenes = [g.scene for g in groups]
            batch = encode_groups(processor, groups)
            answer_loss = model(**batch).loss
            attention_loss = torch.zeros(())
            if attention:
                queries = attention_queries(batch, groups, IMAGE_TOKEN_ID, cfg.counting_keys)
                if not in_counting_stage(cfg, step):
                    queries["counting"] = []  # counting heads are supervised in stage 3 only
                attention_loss = attention.loss(queries, batch["attention_mask"])
        patch_loss = heads.loss(visual["tokens"], torch.stack([patch_targets(sc) for sc in scenes]))
        loss = answer_loss + cfg.patch_weight * patch_loss + cfg.attention_weight * attention_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], cfg.clip)
        optimizer.step()
        window.append((float(answer_loss.detach()), float(patch_loss.detach()), float(attention_loss.detach())))
        done = step + 1
        if done % 50 == 0 or done == cfg.steps:
            means = [round(sum(w[i] for w in window) / len(window), 4) for i in range(3)]
            entry = {"step": done, **dict(zip(("answer_loss", "patch_loss", "attention_loss"), means)), "lr": round(learning_rate(cfg, step), 6),
                     "elapsed_s": round(time.perf_counter() - t_start, 1)}
            window = []
            if done > cfg.vision_steps and (done % cfg.eval_every == 0 or done == cfg.steps):
                model.eval()
                entry["val"] = evaluate_samples(model, processor, val).as_dict()
            log.append(entry)
            echo(json.dumps(entry))
        if done < cfg.steps and (done % cfg.ckpt_every == 0 or done - start == stop_after):
            _save_checkpoint(model, heads, optimizer, ckpt, {"next_step": done, "log": log, "window": window,
                                                      "elapsed_s": time.perf_counter() - t_start})
        if done < cfg.steps and done - start == stop_after:
            echo(json.dumps({"stopped_at_step": done, "checkpoint": str(ckpt)}))
            return None
    if attention:
        attention.remove()
    model.eval()
    save_pretrained(model, processor, out)
    summary = {
        "command": command_line(cfg, out),
        "config": asdict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_val": log[-1].get("val") if log else None,
        "log": log,
    }
    (out / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    if ckpt.exists():
        shutil.rmtree(ckpt)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokcompress_grounding.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (from_pretrained layout)")
    defaults = TrainConfig()
    for name in ("seed", "data_seed", "steps", "batch", "grounding_per_image", "counting_per_image", "warmup",
                 "eval_every", "eval_n", "ckpt_every", "threads", "vision_steps",
                 "vision_batch", "counting_steps", "counting_stage_grounding", "counting_stage_counting"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("lr", "min_lr_ratio", "weight_decay", "clip", "patch_weight", "attention_weight", "init_std"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    for name in ("grounding_heads", "counting_heads"):
        parser.add_argument("--" + name.replace("_", "-"), default=getattr(defaults, name), help="layer:head pairs, comma-separated")
    from .attention_target import COUNTING_KEYS

    parser.add_argument("--counting-keys", default=defaults.counting_keys, choices=COUNTING_KEYS)
    for name, value in asdict(defaults.size).items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=value)
    parser.add_argument("--stop-after", type=int, default=None, help="leave after N steps (resume by rerunning)")
    args = parser.parse_args(argv)
    if args.stop_after is not None and args.stop_after < 1:
        parser.error(f"--stop-after must be >= 1, got {args.stop_after}")
    size = ModelSize(**{k: getattr(args, k) for k in asdict(defaults.size)})
    try:
        cfg = TrainConfig(**{k: getattr(args, k) for k in asdict(defaults) if k != "size"}, size=size)
    except ValueError as err:
        parser.error(str(err))
    train(cfg, args.out, echo=lambda line: print(line, flush=True), stop_after=args.stop_after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
