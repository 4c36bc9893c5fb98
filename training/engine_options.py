"""Engine options from the command line, one owner for every training command: `--set
KEY=VALUE` pairs become typed `CropOptions` overrides (crop_eval, face_eval, fairness_audit)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from autocrop import CropOptions


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """['min_scale=0.8', 'face_small_pass=always'] -> typed CropOptions overrides."""
    defaults = CropOptions()
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not hasattr(defaults, key):
            raise SystemExit(f"unknown option {key!r}")
        current = getattr(defaults, key)
        out[key] = type(current)(value) if isinstance(current, (int, float, str)) else json.loads(value)
    return out


__all__ = ["parse_overrides"]
