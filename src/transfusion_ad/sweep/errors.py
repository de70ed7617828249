"""The one error a sweep raises for bad input: the message names the value and what to do."""


class SweepError(ValueError):
    """A sweep cannot start: unknown dataset or category, missing data root, no previous sweep."""
