"""One memory budget for every photo: what a stage will hold, counted from the header before
any pixel is decoded or expanded, against the peak RSS the process may reach.

The budget is the process's peak resident memory, its baseline included (the interpreter,
NumPy, OpenCV, LiteRT and both models, warm: `BASELINE_BYTES`). A stage adds what it holds
at its peak, in bytes of pixels as the pipeline keeps them, not as the file stores them:

- the photo's bytes (the caller holds them for the whole job);
- the decoded frame in its own mode (a 1-bit or palette pixel is one byte, 16-bit grey two,
  float four), times the decoder's own copies for WebP and HEIF/AVIF (`DECODE_COPIES`);
- for each crop being rendered at once: its pixels in the output's 8-bit mode (RGB three
  bytes, RGBA four...), once more when it is turned upright, the one band the conversion
  works in (`decode.BAND_BYTES`), and its encoded bytes twice (the encoder's file and the
  bytes read back);
- every rendered crop's encoded bytes, kept until the door writes them.

Encoded bytes are the format's worst case (`render.encoded_bound`, measured on noise), so
the count is an upper bound whatever the photo holds. A stage whose count is over the budget
refuses the photo with `ImageTooLargeError` before decoding it (the API's 413, an S3 error
record); the render stage first tries fewer threads. Measured figures per Pillow mode:
docs/memory.md (`tests/benchmarks/bench_memory.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import ImageTooLargeError

#: Peak RSS a job may bring its process to (bytes), baseline included: a 1,536 MB function
#: keeps a third of its memory for Python's own fragmentation and the runtime.
DEFAULT_MEMORY_BUDGET = 1_000_000_000
#: RSS of a warm process before a photo: measured 175 MB for the upload function's process
#: after one job on x86_64 (tests/benchmarks/bench_memory.py prints it), rounded up.
BASELINE_BYTES = 200_000_000
#: Copies of the decoded frame a format's decoder holds at its peak: libwebp and libheif
#: decode into a buffer of their own that Pillow then copies.
DECODE_COPIES = {"WEBP": 2, "HEIF": 2, "AVIF": 2}


@dataclass(frozen=True)
class OutputCost:
    """What rendering one output holds (bytes): its pixels while converted and resampled
    (`working`, at the peak of its conversion, resize and upright turn) and its encoded bytes
    (worst case)."""

    working: int
    encoded: int

    @property
    def in_flight(self) -> int:
        """Held while it is being rendered: pixels, the encoder's file and the bytes read back."""
        return self.working + 2 * self.encoded


def decode_peak(decoded_bytes: int, fmt: str) -> int:
    """Bytes held while the frame is decoded (`DECODE_COPIES`)."""
    return decoded_bytes * DECODE_COPIES.get(fmt, 1)


def render_peak(data_bytes: int, decoded_bytes: int, fmt: str, costs: Sequence[OutputCost], threads: int) -> int:
    """Peak RSS of rendering `costs` from one decode with `threads` at once (baseline included)."""
    in_flight = sorted((c.in_flight for c in costs), reverse=True)[: max(1, threads)]
    kept = sum(c.encoded for c in costs)
    working = decoded_bytes + sum(in_flight) + kept
    return BASELINE_BYTES + data_bytes + max(decode_peak(decoded_bytes, fmt), working)


def analysis_peak(data_bytes: int, decoded_bytes: int, fmt: str, band_bytes: int) -> int:
    """Peak RSS of decoding for analysis (baseline included): the frame, one band, the bytes."""
    return BASELINE_BYTES + data_bytes + max(decode_peak(decoded_bytes, fmt), decoded_bytes + 2 * band_bytes)


def check_budget(needed: int, budget: int, what: str) -> None:
    """Refuse (ImageTooLargeError) a stage that would take the process over `budget` bytes."""
    if needed > budget:
        raise ImageTooLargeError(
            f"{what} needs about {needed / 1e6:.0f} MB of memory (the process's "
            f"{BASELINE_BYTES / 1e6:.0f} MB included), over the {budget / 1e6:.0f} MB budget; "
            "send a smaller photo or ask for smaller outputs"
        )


def threads_within(budget: int, most: int, peak_with: Callable[[int], int]) -> int:
    """The most threads (at most `most`, at least 1) whose render peak fits `budget`."""
    threads = max(1, most)
    while threads > 1 and peak_with(threads) > budget:
        threads -= 1
    return threads


__all__ = [
    "BASELINE_BYTES",
    "DECODE_COPIES",
    "DEFAULT_MEMORY_BUDGET",
    "OutputCost",
    "analysis_peak",
    "check_budget",
    "decode_peak",
    "render_peak",
    "threads_within",
]
