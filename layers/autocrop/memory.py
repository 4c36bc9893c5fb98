"""One memory budget for every photo: what a stage will hold, counted from the header before
any pixel is decoded or expanded, against the peak RSS the process may reach.

The budget is the process's peak resident memory, its baseline included (the interpreter,
NumPy, OpenCV, LiteRT and both models, warm: `BASELINE_BYTES`). A stage adds what it holds
at its peak, in bytes of pixels as the pipeline keeps them, not as the file stores them:

- the photo's bytes (the caller holds them for the whole job);
- the decoded frame as Pillow stores it (a 1-bit, grey or palette pixel is one byte, 16-bit
  grey two, every other mode four), and while it decodes the decoder's own buffers (libwebp's
  and libheif's, a TIFF's largest strip: `decode.decoder_bytes`);
- for each crop being rendered at once: its pixels in the output's 8-bit mode (grey one byte,
  RGB and RGBA four; a full-resolution crop is turned upright band by band, a resized one
  once more when it is turned), the one band the conversion
  works in (`decode.BAND_BYTES`), and its encoded bytes twice (the encoder's file and the
  bytes read back);
- every rendered crop's encoded bytes, kept until the door writes them.

Encoded bytes are the format's worst case (`render.encoded_bound`, measured on noise), so
the count is an upper bound whatever the photo holds. A stage whose count is over the budget
refuses the photo with `ImageTooLargeError` before decoding it (the API's 413, an S3 error
record); the render stage first tries fewer threads. Measured figures per Pillow mode:
docs/memory.md (`benchmarks/bench_memory.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import ImageTooLargeError

#: Peak RSS a job may bring its process to (bytes), baseline included: a 1,536 MB function
#: keeps a third of its memory for Python's own fragmentation and the runtime.
DEFAULT_MEMORY_BUDGET = 1_000_000_000
#: RSS of a warm process before a photo: measured 212 MB for the upload function's process
#: with both saliency networks warm on x86_64 (benchmarks/bench_memory.py prints it; 175 MB
#: with one network), rounded up.
BASELINE_BYTES = 230_000_000


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


def render_peak(
    data_bytes: int, decoded_bytes: int, decoder_bytes: int, costs: Sequence[OutputCost], threads: int
) -> int:
    """Peak RSS of rendering `costs` from one decode with `threads` at once (baseline included)."""
    in_flight = sorted((c.in_flight for c in costs), reverse=True)[: max(1, threads)]
    kept = sum(c.encoded for c in costs)
    working = decoded_bytes + sum(in_flight) + kept
    return BASELINE_BYTES + data_bytes + max(decoded_bytes + decoder_bytes, working)


def analysis_peak(data_bytes: int, decoded_bytes: int, decoder_bytes: int, band_bytes: int) -> int:
    """Peak RSS of decoding for analysis (baseline included): the frame and the decoder's
    buffers, then the frame and the bands it is converted in; the photo's bytes throughout."""
    return BASELINE_BYTES + data_bytes + decoded_bytes + max(decoder_bytes, 2 * band_bytes)


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
    "DEFAULT_MEMORY_BUDGET",
    "OutputCost",
    "analysis_peak",
    "check_budget",
    "render_peak",
    "threads_within",
]
