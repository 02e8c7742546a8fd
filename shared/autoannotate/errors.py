"""The package's error hierarchy: every error we raise on purpose derives from AutoAnnotateError."""

from __future__ import annotations


class AutoAnnotateError(Exception):
    """Root of every error autoannotate raises on purpose."""


class BadFunctionError(AutoAnnotateError):
    """An auto-annotation function broke the protocol (its spec or what it returned)."""


class LabelMappingError(BadFunctionError):
    """Some of a function's labels (or sublabels, attributes) have no counterpart in the target."""

    def __init__(self, message: str, unmatched: list[str] | None = None) -> None:
        super().__init__(message)
        self.unmatched = list(unmatched or [])


class ImageLoadError(AutoAnnotateError):
    """An image could not be read: missing, empty, truncated, not an image, or too large."""


class WeightsNotFoundError(AutoAnnotateError):
    """Model weights are not on this machine and could not be downloaded."""


class BadParameterError(AutoAnnotateError, ValueError):
    """A user-supplied parameter (CLI ``NAME=TYPE:VALUE``, threshold, ...) is malformed."""
