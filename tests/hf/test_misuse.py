"""Handle misuse gets a clear error: two threads on one attached model, duplicate frozen positions."""

from __future__ import annotations

import threading

import pytest
import torch
from hf_support import FASTV

import tokcompress
from tokcompress.errors import InputError
from tokcompress.hf.tiny import Image, make_inputs


def test_a_second_thread_is_refused_while_the_first_runs(tiny):
    model = tiny("llava")
    inputs = make_inputs(model, [[3, Image(), 4]], seed=41)
    inside, release, errors = threading.Event(), threading.Event(), []
    layer = model.model.language_model.layers[0]

    def stall(module, args):
        if threading.current_thread().name == "first":
            inside.set()
            release.wait(10)

    hook = layer.register_forward_pre_hook(stall)
    with tokcompress.attach(model, FASTV["layer"], keep=4) as handle:
        first = threading.Thread(target=lambda: model(**inputs), name="first")
        first.start()
        assert inside.wait(10)
        try:
            with pytest.raises(InputError, match="already running a forward in another thread.*one model .* per thread"):
                model(**inputs)
        finally:
            release.set()
            first.join()
        model(**inputs)  # free again once the first call returned
        assert handle.stats.visual_after == (4,)
    hook.remove()


def test_a_failed_forward_frees_the_model_for_other_threads(tiny):
    model = tiny("llava")
    inputs = make_inputs(model, [[3, Image(), 4]], seed=42)
    with tokcompress.attach(model, FASTV["layer"], keep=4):
        with pytest.raises(Exception):
            model(**{**inputs, "pixel_values": inputs["pixel_values"][:, :1]})
        done = []
        t = threading.Thread(target=lambda: done.append(model(**inputs).logits.shape))
        t.start()
        t.join()
        assert done, "the other thread was refused after a failed call"


@pytest.mark.parametrize("row, message", [([5, 5, 6, 7], "names position 5 twice"), ([[1, 2]], "must be a 1-D tensor"),
                                          ([-1, 3], "negative position -1"), ([0.5, 1.0], "must be a 1-D tensor of int")])
def test_freeze_refuses_what_would_feed_a_token_twice_or_nowhere(tiny, row, message):
    with tokcompress.attach(tiny("llava"), FASTV["layer"], keep=4) as handle:
        with pytest.raises(InputError, match=message):
            handle.freeze([torch.tensor(row)])
