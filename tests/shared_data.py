"""Where the tests find ../shared/data, and the marker for tests that need it.

CI runs on a clean clone with ../shared beside it; elsewhere these tests are skipped, with
the reason, rather than failing on a missing dataset.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = (Path(__file__).resolve().parents[1] / "../shared/data").resolve()
OSIE = DATA / "saliency" / "osie"
needs_data = pytest.mark.skipif(not OSIE.is_dir(), reason="../shared/data is not present")
