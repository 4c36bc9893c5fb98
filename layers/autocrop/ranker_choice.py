"""Which ranker a call uses (`CropOptions.ranker`), chosen without importing the learned
ranker's module unless it may run: `ranker="auto"` reads the ranker's model card first, and
only a card that says the learned ranker beat the composition score loads it (cold starts
pay for no interpreter they would not use).

It sits apart from both `ranking` (the composition order, which knows nothing of the learned
ranker) and `ranker` (the learned ranker, which builds on `ranking`), so neither imports the
other back.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .options import CropOptions
from .ranking import (
    DEFAULT_RANKER_MODEL,
    CompositionRanker,
    Ranker,
    card_beats_composition,
)


@lru_cache(maxsize=4)
def ranker_beats_composition(path: str | None = None) -> bool:
    """Whether the shipped ranker's card says it beat the composition score: read from the
    card alone, so `ranker="auto"` neither imports the learned ranker nor builds its
    interpreter (cold-start costs) when the card already says no."""
    try:
        card = json.loads((Path(path) if path else DEFAULT_RANKER_MODEL).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return False
    return card_beats_composition(card)


def select_ranker(options: CropOptions) -> Ranker:
    """The ranker `options.ranker` names: the learned one (or its fallback), the composition
    score, or ("auto") the learned one only where its model card shows it is the better one."""
    if options.ranker == "composition" or (options.ranker == "auto" and not ranker_beats_composition()):
        return CompositionRanker()
    from .ranker import load_ranker  # only here: the learned ranker may run

    ranker = load_ranker()
    if options.ranker == "auto" and (isinstance(ranker, CompositionRanker) or not ranker.beats_composition):
        return CompositionRanker()  # the card and the model disagree, or it did not load
    return ranker


__all__ = ["ranker_beats_composition", "select_ranker"]
