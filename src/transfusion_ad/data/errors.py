"""Errors raised by the data layer: each message names the path and says what to do."""


class DataLayoutError(ValueError):
    """A data root, category or folder layout is missing or malformed."""


class UnreadableImageError(ValueError):
    """An image or mask file cannot be decoded (zero bytes, truncated, not an image)."""
