"""LiteRT interpreters built without LiteRT's start-up banner on the terminal.

The first interpreter a process allocates makes LiteRT's C++ logger write
"INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to file descriptor 2
(no Python logging, no setting turns it off). It tells a user nothing and lands in the
middle of progress bars, so building an interpreter runs with descriptor 2 captured and
everything else written there meanwhile (a real error or warning) passed on unchanged.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: The one line kept off the terminal.
BANNER = b"Created TensorFlow Lite XNNPACK delegate"

# Descriptor 2 is one per process: two captures at once would restore each other's copy.
_capture_lock = threading.Lock()


@contextmanager
def litert_banner_filtered() -> Iterator[None]:
    """Run the block with descriptor 2 captured; then write back all of it but the banner."""
    with _capture_lock, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 to protect
            yield
            return
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(line for line in captured.read().splitlines(keepends=True) if BANNER not in line)
            if kept:
                os.write(2, kept)
