"""The integration's placements, one module each: decoder inputs, layer K, vision tower."""

from .base import ModelPlacement, Strategy
from .inputs import InputsPlacement
from .layer import LayerPlacement
from .vision import VisionPlacement

__all__ = ["ModelPlacement", "Strategy", "InputsPlacement", "LayerPlacement", "VisionPlacement", "PLACEMENTS"]

PLACEMENTS = (InputsPlacement, LayerPlacement, VisionPlacement)
