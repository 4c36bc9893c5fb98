"""How a model card is written: one JSON layout for every writer of the saliency card (the
export, `--refresh-card`, the fairness audit) and its members' cards.

Indented JSON, with each short list of plain values (a shape, a config's sets, an interval)
on one line: the card stays readable and under its size cap (tests/training/test_model_cards.py).
Longer lists (commands) keep one value per line."""

from __future__ import annotations

import json
import re
from typing import Any

#: A JSON list holding no list, object or bracket: the plain values an indent spreads over lines.
_PLAIN_LIST = re.compile(r"\[\n\s+([^\[\]{}]*?)\n\s+\]")
#: The longest list written on one line.
ONE_LINE = 100


def _one_line(match: re.Match[str]) -> str:
    line = "[" + re.sub(r",\n\s+", ", ", match.group(1)) + "]"
    return line if len(line) <= ONE_LINE else match.group(0)


def dump_card(card: dict[str, Any]) -> str:
    """The card as written to disk (ends with a newline). The layout only moves whitespace
    between values; if a string's own characters ever met the pattern, the plain indented
    layout is written instead, so what is read back is always the card."""
    text = json.dumps(card, indent=2)
    compact = _PLAIN_LIST.sub(_one_line, text)
    return (compact if json.loads(compact) == card else text) + "\n"
