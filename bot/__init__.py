"""diplobot: one announcement, many languages, each to its own account."""

__version__ = "0.1.0"
