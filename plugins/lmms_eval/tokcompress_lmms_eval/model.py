"""The lmms-eval model classes: a supported HF VLM, with a tokcompress pruner attached for the whole run.

`TokcompressChat` (``is_simple = False``, lmms-eval's default for ``--model tokcompress``) reads chat
requests, `TokcompressSimple` (``--force_simple``) simple ones; both read either shape, so a task class
that builds the other still runs. Generation is greedy unless the task asks for sampling; batches are
left-padded (tiny models run one prompt at a time). ``loglikelihood`` scores each continuation with one
forward pass and returns lmms-eval's convention: the mean negative log-likelihood of the continuation
tokens (its ``multiple_choice`` picks the lowest), and whether greedy decoding would produce them.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import torch
from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.api.model import lmms

import tokcompress
from tokcompress.errors import InputError

from .accounting import PrefillTimer, RunTotals, row_counts
from .loading import Prompt, load_vlm
from .options import NO_PRUNER, PluginOptions, parse_options

__all__ = ["TokcompressSimple", "TokcompressChat", "pruner_spec"]


def pruner_spec(options: PluginOptions):
    """The `PrunerSpec` of ``pruner`` (and ``profile``), or None for ``pruner=none``."""
    if options.pruner == NO_PRUNER:
        return None
    spec = tokcompress.load_spec(options.pruner)
    if options.profile is None:
        return spec
    data = spec.to_dict()
    debiaser = data.get("debiaser") or {}
    if debiaser.get("name") != "position_prior":
        raise InputError(f"model_args profile={options.profile!r} sets the profile of a position_prior debiaser, but "
                         f"pruner {options.pruner!r} has debiaser {debiaser.get('name')!r}")
    data["debiaser"] = {**debiaser, "profile": options.profile}
    return tokcompress.load_spec(data)


class TokcompressSimple(lmms):
    """``lmms-eval --model tokcompress --model_args pretrained=...,pruner=d2pruner,keep=64`` (see `options`)."""

    is_simple = True

    def __init__(self, **model_args: Any) -> None:
        super().__init__()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise InputError("the tokcompress model runs in one process (WORLD_SIZE=1); launch one run per GPU")
        self.options = parse_options(model_args)
        spec = pruner_spec(self.options)  # a bad spec fails before the model loads
        self.vlm = load_vlm(self.options)
        self.timer = PrefillTimer(self.vlm.model, self.vlm.device)
        self.handle = None
        if spec is not None:
            self.handle = tokcompress.attach(self.vlm.model, spec, keep=self.options.keep, ratio=self.options.ratio)

    @property
    def model(self):
        return self.vlm.model

    @property
    def device(self) -> torch.device:
        return self.vlm.device

    @property
    def batch_size(self) -> int:
        return self.options.batch_size

    # -- requests -----------------------------------------------------------------------------
    def _doc(self, task: str, split: str, doc_id: int) -> dict:
        return self.task_dict[task][split][doc_id]

    def _prompt(self, request: Instance) -> tuple[Prompt, dict[str, Any]]:
        """The prompt and generation kwargs of a chat ``(ctx, doc_to_messages, gen_kwargs, ...)`` or simple
        ``(ctx, gen_kwargs, doc_to_visual, ...)`` request."""
        args = request.args
        if callable(args[1]):
            _, to_messages, gen_kwargs, doc_id, task, split = args
            prompt = _chat_prompt(to_messages(self._doc(task, split, doc_id)))
        else:
            ctx, gen_kwargs, to_visual, doc_id, task, split = args
            prompt = self._simple_prompt(ctx, to_visual(self._doc(task, split, doc_id)) if to_visual else [])
        prompt.key = f"{task}/{split}/{doc_id}"
        return prompt, dict(gen_kwargs or {})

    def _simple_prompt(self, ctx: str, visuals: Any) -> Prompt:
        images = [_image(v) for v in _flatten(visuals)]
        token = getattr(self.vlm, "image_token", "<image>")
        slots = max(0, len(images) - ctx.count(token))
        return Prompt([{"role": "user", "content": [{"type": "image"}] * slots + [{"type": "text", "text": ctx}]}], images)

    # -- generation ---------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        prepared = [self._prompt(r) for r in requests]
        groups: dict[str, list[int]] = {}
        for i, (_, gen) in enumerate(prepared):
            groups.setdefault(json.dumps(gen, sort_keys=True, default=str), []).append(i)
        size = min(self.batch_size, self.vlm.max_batch or self.batch_size)
        out: list[GenerationResult | None] = [None] * len(requests)
        totals = RunTotals()
        for indices in groups.values():
            for start in range(0, len(indices), size):
                chunk = indices[start:start + size]
                texts, counts, seconds = self._generate([prepared[i][0] for i in chunk], prepared[chunk[0]][1])
                totals.add(counts, seconds)
                for i, text, count in zip(chunk, texts, counts):
                    out[i] = GenerationResult(text=text, token_counts=count)
        if requests:
            totals.publish()
        return out  # type: ignore[return-value]

    def _generate(self, prompts: list[Prompt], gen: dict[str, Any]):
        until = gen.pop("until", None)
        until = [until] if isinstance(until, str) else list(until or [])
        sample = float(gen.get("temperature") or 0) > 0 or bool(gen.get("do_sample"))
        kwargs: dict[str, Any] = {"max_new_tokens": int(gen.get("max_new_tokens") or self.options.max_new_tokens),
                                  "do_sample": sample, "num_beams": int(gen.get("num_beams") or 1)}
        if sample:
            kwargs.update(temperature=float(gen.get("temperature") or 1.0), top_p=gen.get("top_p"))
        vlm = self.vlm
        inputs = vlm.encode(prompts)
        if self.handle is not None:
            self.handle.stats = None  # a call without images leaves the last call's stats otherwise
        self.timer.arm()
        start = time.perf_counter()
        with torch.inference_mode():
            out = vlm.model.generate(**inputs, **kwargs, pad_token_id=vlm.pad_id, eos_token_id=sorted(vlm.eos_ids) or None)
        seconds = time.perf_counter() - start
        texts, lengths = [], []
        for row in out[:, inputs["input_ids"].shape[1]:].tolist():
            stop = next((k for k, tok in enumerate(row) if tok in vlm.eos_ids), len(row))
            texts.append(_cut(vlm.decode(row[:stop]), until))
            lengths.append(stop)
        stats = self.handle.stats if self.handle is not None else None
        return texts, row_counts(vlm.model, inputs, vlm.image_token_id, stats, self.timer.ms, lengths), seconds

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("the tokcompress model does not run multi-round tasks (generate_until_multi_round): "
                                  "a pruned prefill cannot take new images in later rounds; pick single-round tasks")

    # -- scoring ------------------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance]) -> list[GenerationResult]:
        """``(mean NLL of the continuation, greedy?)`` per request, each from one forward pass.

        Returned inside a `GenerationResult` so the per-sample counts reach the log (lmms-eval 0.7.3 turns a
        bare tuple into its string; the tuple inside ``text`` reaches the task intact).
        """
        totals, out = RunTotals(), []
        for request in requests:
            ctx, target, to_visual, doc_id, task, split = request.args
            doc = self._doc(task, split, doc_id)
            continuation = target if isinstance(target, str) else target(doc)
            prompt = self._simple_prompt(ctx, to_visual(doc) if to_visual else [])
            prompt.key = f"{task}/{split}/{doc_id}"
            (nll, greedy), counts, seconds = self._score(prompt, continuation)
            totals.add(counts, seconds)
            out.append(GenerationResult(text=(nll, greedy), token_counts=counts[0]))
        if requests:
            totals.publish()
        return out

    def _score(self, prompt: Prompt, continuation: str):
        vlm = self.vlm
        cont = vlm.continuation_ids(continuation)
        if not cont:
            raise InputError(f"loglikelihood: continuation {continuation!r} has no tokens (sample {prompt.key})")
        inputs = _append(vlm.encode([prompt]), torch.tensor([cont], device=vlm.device))
        if self.handle is not None:
            self.handle.stats = None
        self.timer.arm()
        start = time.perf_counter()
        with torch.inference_mode():
            logits = vlm.model(**inputs, use_cache=False).logits
        seconds = time.perf_counter() - start
        # text tokens are never pruned: the continuation's predictions are the last len(cont) + 1 positions
        scores = torch.log_softmax(logits[0, -len(cont) - 1:-1].float(), dim=-1)
        target = torch.tensor(cont, device=scores.device)
        logprob = float(scores.gather(1, target[:, None]).sum())
        greedy = bool((scores.argmax(dim=-1) == target).all())
        stats = self.handle.stats if self.handle is not None else None
        counts = row_counts(vlm.model, inputs, vlm.image_token_id, stats, self.timer.ms, [len(cont)])
        return (-logprob / len(cont), greedy), counts, seconds


class TokcompressChat(TokcompressSimple):
    """The chat-request class lmms-eval picks by default (``is_simple = False``)."""

    is_simple = False


# -- helpers ----------------------------------------------------------------------------------
def _flatten(visuals: Any) -> list[Any]:
    if visuals is None:
        return []
    if not isinstance(visuals, (list, tuple)):
        return [visuals]
    return [v for item in visuals for v in _flatten(item)]


def _image(visual: Any):
    from PIL import Image

    if isinstance(visual, Image.Image):
        return visual.convert("RGB")
    if isinstance(visual, str) and visual.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tiff")):
        with Image.open(visual) as im:
            return im.convert("RGB")
    raise InputError(f"the tokcompress model takes images (PIL images or image paths), got {type(visual).__name__} "
                     f"{str(visual)[:80]!r}; video and audio tasks are not supported")


def _chat_prompt(messages: list[dict[str, Any]]) -> Prompt:
    """HF chat messages with ``{"type": "image"}`` slots from lmms-eval's protocol messages (images pulled out)."""
    from lmms_eval.protocol import ChatMessages

    parsed = ChatMessages(messages=messages)
    out, images = [], []
    for message in parsed.messages:
        content = []
        for item in message.content:
            if item.type == "text":
                content.append({"type": "text", "text": item.text})
            elif item.type == "image":
                images.append(_image(item.url))
                content.append({"type": "image"})
            else:
                raise InputError(f"the tokcompress model takes text and images, got a {item.type!r} item")
        out.append({"role": message.role, "content": content})
    return Prompt(out, images)


def _cut(text: str, until: list[str]) -> str:
    """`text` up to the earliest stop sequence (lmms-eval's ``until``)."""
    for stop in until:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text


def _append(inputs: dict[str, torch.Tensor], new: torch.Tensor) -> dict[str, torch.Tensor]:
    """`inputs` with tokens `new` [1, t] appended (mask 1, per-token type ids 0)."""
    out = dict(inputs)
    out["input_ids"] = torch.cat([inputs["input_ids"], new], dim=1)
    for key, fill in (("attention_mask", 1), ("mm_token_type_ids", 0), ("token_type_ids", 0)):
        if inputs.get(key) is not None:
            out[key] = torch.cat([inputs[key], torch.full_like(new, fill, dtype=inputs[key].dtype)], dim=1)
    return out
