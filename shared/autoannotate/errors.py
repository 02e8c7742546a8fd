"""The package's error hierarchy: every error we raise on purpose derives from AutoAnnotateError."""

from __future__ import annotations


class AutoAnnotateError(Exception):
    """Root of every error autoannotate raises on purpose."""


class BadFunctionError(AutoAnnotateError):
    """An auto-annotation function broke the protocol (its spec or what it returned)."""


class LabelMappingError(AutoAnnotateError):
    """A function's labels cannot be mapped onto a target's (a dataset's classes, a labeling
    config's labels): some have no counterpart, a name matches several target labels, or the two
    sides disagree on a label's type or an attribute's input type. A problem between the function
    and the target, not a broken function. ``unmatched`` lists the names concerned."""

    def __init__(self, message: str, unmatched: list[str] | None = None) -> None:
        super().__init__(message)
        self.unmatched = list(unmatched or [])


class NoLabelsMatchError(LabelMappingError):
    """Not one of the function's labels has a counterpart in the target."""


class ImageLoadError(AutoAnnotateError):
    """An image could not be read: missing, empty, truncated, not an image, or too large."""


class WeightsNotFoundError(AutoAnnotateError):
    """Model weights are not on this machine and could not be downloaded."""


class BadParameterError(AutoAnnotateError, ValueError):
    """A user-supplied parameter (CLI ``NAME=TYPE:VALUE``, threshold, ...) is malformed."""
