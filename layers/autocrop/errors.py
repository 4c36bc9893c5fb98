"""Domain errors of the engine. The edges (CLI, API, S3 trigger) map these once each.

No HTTP here: the API maps `UnsupportedImageError` to 415/422, `ImageTooLargeError` to 413 and
`InvalidOptionsError` to 422; the CLI reports them per file and keeps going.
"""

from __future__ import annotations


class AutocropError(Exception):
    """Base class of every error the engine raises on purpose."""


class UnsupportedImageError(AutocropError):
    """The bytes are not an image the engine can read (unknown format, corrupt, empty)."""


class ImageTooLargeError(AutocropError):
    """The image has more pixels than the configured guard allows (decompression bombs)."""


class InvalidOptionsError(AutocropError, ValueError):
    """An option is malformed: a ratio, a size, an output format, a hint out of range."""


__all__ = ["AutocropError", "ImageTooLargeError", "InvalidOptionsError", "UnsupportedImageError"]
