"""The composition score: a weighted sum of named terms, reported term by term.

    score = weight_saliency x saliency kept            (share of where people look)
          + weight_faces    x face importance kept whole   (all of it when there is no face)
          - weight_heads    x head margins (hair/chin/ears around a face) sliced by the edges
          - weight_edges    x salient content cut by the edges, or left as a sliver at them
          - weight_edges    x bodies of dropped people showing at the edges (`people_slivers`)
          - weight_edges    x objects on a plain background cut by the edges (`objects_sliced`)
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
        * (
            options.saliency_relative * features.saliency_of_best
            + (1 - options.saliency_relative) * features.saliency_kept
        ),
        faces_term_name(features): options.weight_faces * features.faces_share,
        "head_margins_sliced": -options.weight_heads * features.head_cut,
        "edges": -options.weight_edges * features.edge_cut,
        "people_slivers": -options.weight_edges * features.people_cut,
        "objects_sliced": -options.weight_edges * features.objects_cut,
        "position": options.weight_position * features.position,
        "area": options.weight_area * features.area,
    }
    if options.focal_point is not None:
        terms["focus"] = options.weight_focus * features.focus
    return terms


#: What each term of the breakdown means, as a reader of a crop's JSON needs it.
TERM_MEANINGS = {
    "saliency": "weight_saliency x the saliency inside, as a share of the most any window of the same size "
                "holds",
    "faces_kept_whole": "weight_faces x the share of the protected faces' importance (area x confidence) "
                        "kept whole; the rest was left out whole",
    "no_protected_face": "weight_faces, the same for every window: the photo has no face big enough to "
                         "protect (face_min_size), so no crop can lose one; it decides nothing",
    "head_margins_sliced": "-weight_heads x how much the crop's edges slice the wide head around each face "
                           "(face_margin_*: hair, chin, ears), beyond what every crop keeping or dropping that "
                           "face must; by importance, -1 = the main face's head cut in half. face_report's "
                           "heads_cut counts only the narrower guards (face_guard_*), so this can be below 0 "
                           "while heads_cut is 0",
    "edges": "-weight_edges x salient content on both sides of an edge: a subject cut through, or a thin "
             "part of it left just inside or just outside the crop",
    "people_slivers": "-weight_edges x the most of a dropped person's body the crop still shows at its edge, "
                      "as a share of the body's width (estimated from the face); people the crop keeps or "
                      "leaves out whole cost nothing",
    "objects_sliced": "-weight_edges x the objects on a plain background (a graphic's shapes, a shot's "
                      "products) the crop's edges cut (any cut: the whole weight); 0 when there are none",
    "position": "weight_position x closeness to the photo's centre (breaks ties)",
    "area": "weight_area x the window's area / the largest of the ratio",
    "focus": "weight_focus x closeness to the focal point (only with one)",
    "learned": "the learned ranker's correction to the composition score (only when it chose)",
}  # fmt: skip


def faces_term_name(features: WindowFeatures) -> str:
    """The faces term's name: what it measured for this photo (see TERM_MEANINGS)."""
    return "faces_kept_whole" if len(features.protected) else "no_protected_face"


def total_score(terms: dict[str, np.ndarray]) -> np.ndarray:
    """Sum of the weighted terms."""
    return np.sum(np.stack(list(terms.values())), axis=0)


def composition_score(features: WindowFeatures, options: CropOptions) -> np.ndarray:
    """Every window's composition score (ordered by `ranking.order_by`)."""
    return total_score(composition_terms(features, options))


__all__ = ["RANKER_NAME", "TERM_MEANINGS", "composition_score", "composition_terms", "faces_term_name", "total_score"]
