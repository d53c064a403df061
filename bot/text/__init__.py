"""Text measurement for X: weighted length, entity extraction, splitting."""

from bot.text.length import MAX_WEIGHTED_LENGTH, Measure, measure, normalize, weighted_length

__all__ = ["MAX_WEIGHTED_LENGTH", "Measure", "measure", "normalize", "weighted_length"]
