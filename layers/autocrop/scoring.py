"""The composition score: a weighted sum of named terms, reported term by term.

    score = weight_saliency x saliency kept            (share of where people look)
          + weight_faces    x face importance kept whole
          - weight_heads    x heads (faces with hair/chin/ear margins) sliced by the edges
          - weight_edges    x salient content cut by the edges
          + weight_position x centredness               (ties go to the centre)
          + weight_area     x area / largest area       (bigger crops keep more context)
          + weight_focus    x closeness to the focal point   (only with a focal point)

Every term is in 0..1 before weighting, and the breakdown holds the weighted values, so they
add up to the score. This is the transparent, model-free ranker (`ranking.CompositionRanker`);
a learned ranker only re-orders the best windows it finds.
"""

from __future__ import annotations

import numpy as np

from .candidates import WindowFeatures
from .options import CropOptions

#: Name of this ranker in results (`Crop.chosen_by`).
RANKER_NAME = "composition"


def composition_terms(features: WindowFeatures, options: CropOptions) -> dict[str, np.ndarray]:
    """Each term's weighted contribution, per window."""
    terms = {
        "saliency": options.weight_saliency
        * (options.saliency_relative * features.saliency_of_best + (1 - options.saliency_relative) * features.saliency_kept),
        "faces": options.weight_faces * features.faces_share,
        "heads": -options.weight_heads * features.head_cut,
        "edges": -options.weight_edges * features.edge_cut,
        "position": options.weight_position * features.position,
        "area": options.weight_area * features.area,
    }
    if options.focal_point is not None:
        terms["focus"] = options.weight_focus * features.focus
    return terms


def total_score(terms: dict[str, np.ndarray]) -> np.ndarray:
    """Sum of the weighted terms."""
    return np.sum(np.stack(list(terms.values())), axis=0)


def composition_score(features: WindowFeatures, options: CropOptions) -> np.ndarray:
    """Every window's composition score (ordered by `ranking.order_by`)."""
    return total_score(composition_terms(features, options))


__all__ = ["RANKER_NAME", "composition_score", "composition_terms", "total_score"]
