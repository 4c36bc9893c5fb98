"""How a model card is written: one JSON layout for every writer of the saliency card (the
export, `--refresh-card`, the fairness audit) and its members' cards.

Indented JSON, with each short list of plain values (a shape, a config's sets, an interval)
on one line: the card stays readable and under its size cap (tests/training/test_model_cards.py).
Longer lists (commands) keep one value per line."""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: A JSON list holding no list, object or bracket: the plain values an indent spreads over lines.
_PLAIN_LIST = re.compile(r"\[\n\s+([^\[\]{}]*?)\n\s+\]")
#: The longest list written on one line.
ONE_LINE = 100


def _one_line(match: re.Match[str]) -> str:
    line = "[" + re.sub(r",\n\s+", ", ", match.group(1)) + "]"
    return line if len(line) <= ONE_LINE else match.group(0)


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float as None: JSON has no NaN, and a card is JSON
    (a figure that could not be measured reads null)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dump_card(card: dict[str, Any]) -> str:
    """The card as written to disk (ends with a newline): strict JSON (NaN and infinities as
    null, `finite`). The layout only moves whitespace between values; if a string's own
    characters ever met the pattern, the plain indented layout is written instead, so what is
    read back is always what the plain layout reads back."""
    text = json.dumps(finite(card), indent=2, allow_nan=False)
    compact = _PLAIN_LIST.sub(_one_line, text)
    return (compact if json.loads(compact) == json.loads(text) else text) + "\n"
