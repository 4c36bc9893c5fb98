"""Domain errors of the engine. The edges (CLI, API, S3 trigger) map these once each.

Each class carries its stable machine-readable `code` (the API's `"error"` field, an S3 error
record's `"code"`); no HTTP here: the API maps codes to statuses (415, 413, 422), the CLI
reports errors per file and keeps going.
"""

from __future__ import annotations


class AutocropError(Exception):
    """Base class of every error the engine raises on purpose."""

    code = "autocrop_error"


class UnsupportedImageError(AutocropError):
    """The bytes are not an image the engine can read (unknown format, corrupt, empty)."""

    code = "unsupported_image"


class ImageTooLargeError(AutocropError):
    """The image has more pixels than the configured guard allows (decompression bombs)."""

    code = "image_too_large"


class OutputTooLargeError(AutocropError):
    """The outputs asked for exceed the door's limits: a side, the pixels of one call, or the
    bytes an answer can carry (checked before rendering, from the formats' worst case)."""

    code = "output_too_large"


class InvalidOptionsError(AutocropError, ValueError):
    """An option is malformed: a ratio, a size, an output format, a hint out of range."""

    code = "invalid_options"


__all__ = ["AutocropError", "ImageTooLargeError", "InvalidOptionsError", "OutputTooLargeError", "UnsupportedImageError"]
