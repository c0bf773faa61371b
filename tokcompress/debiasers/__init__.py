"""Debiaser interface. Leaving the stage out of a spec means no correction."""

from .base import Debiaser

__all__ = ["Debiaser"]
