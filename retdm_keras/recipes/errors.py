"""The errors of the recipe package."""

from __future__ import annotations

__all__ = ["RecipeError", "WeightsUnavailableError"]


class RecipeError(ValueError):
    """A recipe file that does not validate; the message names the file and the field."""


class WeightsUnavailableError(RuntimeError):
    """``weights: imagenet`` could not be loaded (no download, no cached file)."""
