"""Stage combinations that cannot work are refused when the spec loads, naming what is missing."""

from __future__ import annotations

import pytest

import tokcompress
from tokcompress.errors import SpecError


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"apply": "none", "debiaser": "position_prior", "selector": "uniform"},
         r"debiaser 'position_prior' .* corrects scores but the spec has no scorer"),
        ({"apply": "none", "graph": "cosine", "selector": "dpp"}, r"selector 'dpp' .* ranks tokens by score but the spec has no scorer"),
        ({"apply": "none", "scorer": "attention", "selector": "greedy_mis"}, r"needs a adjacency graph but the spec has no 'graph' block"),
        ({"apply": "none", "selector": "uniform", "merger": "contextual"}, r"merges into the targets the selector marks"),
    ],
)
def test_composition_errors(spec, message):
    with pytest.raises(SpecError, match=message):
        tokcompress.load_spec(spec)


def test_merger_needs_hidden_features_in_every_placement_that_offers_normed_ones():
    for placement in ("layer", "pre_llm"):
        spec = {"apply": {"placement": placement, "features": "normed"}, "scorer": "attention", "selector": "visionzip",
                "merger": {"name": "contextual", "source": "features"}}
        if placement == "pre_llm":
            spec["scorer"] = "feature_norm"
        with pytest.raises(SpecError, match=r"apply.features 'normed' cannot be combined with a merger"):
            tokcompress.load_spec(spec)
        spec["apply"]["features"] = "hidden"
        assert tokcompress.load_spec(spec).merger.name == "contextual"


def test_normed_features_are_not_offered_where_there_is_no_decoder_norm():
    with pytest.raises(SpecError, match=r"apply 'vision', field 'features': Extra inputs are not permitted \(got 'normed'\)"):
        tokcompress.load_spec({"apply": {"placement": "vision", "features": "normed"}, "scorer": "attention", "selector": "topk"})
