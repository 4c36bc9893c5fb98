"""The engine: one decode, one saliency pass, one face pass, then every ratio's best window.

bytes -> decode (upright, reduced) -> saliency map (+ backbone features) + faces
      -> per ratio: propose windows -> measure (integral image, face rule)
      -> rank (`ranking`: the composition order; a learned ranker, imported only when
         `select_ranker` may use it, re-orders its shortlist)
      -> CropResult (boxes in upright full-resolution pixels)
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from .candidates import (
    SaliencyIndex,
    Windows,
    largest_window,
    measure_windows,
    propose_windows,
)
from .decode import decode
from .face_rule import even_face_saliency, face_report
from .faces import FaceDetector, detect_faces, load_face_detector
from .geometry import iou
from .options import CropOptions, parse_ratio
from .ranker_choice import select_ranker
from .ranking import PhotoContext, Ranker, rank_candidates
from .rules import (
    PLAIN_BACKGROUND,
    WHOLE_PHOTO,
    Subject,
    keeps_whole,
    plain_subject,
    subject_box,
)
from .saliency import (
    SaliencyOutput,
    SaliencyPredictor,
    SaliencyWithFeatures,
    load_saliency,
)
from .scoring import composition_terms, total_score
from .types import Box, Crop, CropResult, DecodedImage, Face, Region

_DEFAULT_OPTIONS = CropOptions()
#: `Crop.chosen_by` of a crop that is a box override.
OVERRIDE_NAME = "override"
#: Best windows among which the debug view's distinct runners-up are picked.
RUNNER_UP_POOL = 60
#: Runners-up overlapping an already picked window more than this (IoU) are skipped.
RUNNER_UP_MAX_IOU = 0.6


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def decode_for(data: bytes, options: CropOptions) -> DecodedImage:
    """The engine's decode of `data` under `options`: pixel limit, reduced analysis size."""
    return decode(data, options.max_pixels, options.analysis_long_side, options.analysis_min_long_side,
                  options.memory_budget)  # fmt: skip


def analyse(data: bytes, options: CropOptions = _DEFAULT_OPTIONS) -> CropResult:
    """Find the best crop of the photo in `data` for every ratio in `options`."""
    start = time.perf_counter()
    decoded = decode_for(data, options)
    decode_ms = _ms(start)
    return analyse_image(decoded, options, _timings={"decode": decode_ms}, _start=start)


def checked_map(sal: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """A predicted map made safe to index: float32, the image's size, finite, in [0, 1]."""
    sal = np.asarray(sal, dtype=np.float32)
    if sal.shape != rgb.shape[:2]:
        sal = cv2.resize(sal, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.nan_to_num(sal, nan=0.0), 0.0, 1.0)


def predict_saliency(rgb: np.ndarray, predictor: SaliencyPredictor) -> np.ndarray:
    """The predictor's map for `rgb`, checked."""
    return checked_map(predictor.predict(rgb), rgb)


def saliency_pass(rgb: np.ndarray, predictor: SaliencyPredictor) -> SaliencyOutput:
    """One saliency pass: the checked map and, when the model has them, its backbone features."""
    if not isinstance(predictor, SaliencyWithFeatures):
        return SaliencyOutput(predict_saliency(rgb, predictor), None, None)
    out = predictor.predict_with_features(rgb)
    return SaliencyOutput(checked_map(out.saliency, rgb), out.features, out.letterbox)


def boosted(saliency: np.ndarray, boost: tuple[Region, ...]) -> np.ndarray:
    """The map with each boost region raised by `weight` x the map's total, spread over it."""
    if not boost:
        return saliency
    out = saliency.astype(np.float64)
    total = float(saliency.sum()) or float(saliency.size)  # an empty map still gets boosted
    h, w = saliency.shape
    for region in boost:
        x0, y0, x1, y1 = region.to_pixels(w, h)
        c0, r0 = min(int(x0), w - 1), min(int(y0), h - 1)
        c1, r1 = max(c0 + 1, round(x1)), max(r0 + 1, round(y1))
        out[r0:r1, c0:c1] += region.weight * total / ((r1 - r0) * (c1 - c0))
    return out


def faces_to_full(faces: np.ndarray, decoded: DecodedImage) -> np.ndarray:
    """(N, 5) analysis-px face rows -> upright full-resolution px."""
    sx, sy = decoded.scale
    out = faces.astype(np.float64).copy()
    out[:, [0, 2]] *= sx
    out[:, [1, 3]] *= sy
    return out


def distinct_runners_up(windows: Windows, order: np.ndarray, count: int) -> tuple[Box, ...]:
    """Up to `count` windows after the best, in rank order, none too like one before it."""
    pool = np.asarray(order[:RUNNER_UP_POOL], dtype=np.intp)
    if len(pool) < 2 or count <= 0:
        return ()
    x0, y0, w, h = windows.x[pool], windows.y[pool], windows.w[pool], windows.h[pool]
    xyxy = np.stack([x0, y0, x0 + w, y0 + h], axis=1)
    too_alike = iou(xyxy[:, None], xyxy[None, :]) > RUNNER_UP_MAX_IOU
    picked = [0]
    for i in range(1, len(pool)):
        if len(picked) > count:
            break
        if not too_alike[i, picked].any():
            picked.append(i)
    return tuple(Box(int(x0[i]), int(y0[i]), int(w[i]), int(h[i])) for i in picked[1:])


def prepare_photo(
    decoded: DecodedImage,
    options: CropOptions,
    predictor: SaliencyPredictor,
    detector: FaceDetector,
    timings: dict[str, float] | None = None,
) -> tuple[PhotoContext, np.ndarray]:
    """The stages every ratio shares: (the photo's ranking context, its checked saliency map).

    One saliency pass (with the backbone's features where the model gives them), one face
    pass, the integral image of the boosted map.
    The ranker's training prepares its photos with it too, so it sees what the engine sees.
    """
    timings = {} if timings is None else timings
    t = time.perf_counter()
    sal_pass = saliency_pass(decoded.rgb, predictor)
    sal = sal_pass.saliency
    timings["saliency"] = _ms(t)

    t = time.perf_counter()
    faces_px = detect_faces(decoded.rgb, detector, options, sal_pass.saliency)
    faces_full = faces_to_full(faces_px, decoded)
    timings["faces"] = _ms(t)

    t = time.perf_counter()
    # Windows are measured on the map with the faces' saliency shared by importance (the face
    # rule decides between faces); `sal`, the network's map, is what results report.
    even = even_face_saliency(sal, faces_full, decoded.width, decoded.height, options)
    index = SaliencyIndex.build(boosted(even, options.boost), decoded.width, decoded.height)
    photo = PhotoContext.build(decoded.width, decoded.height, index, faces_full, sal_pass.features, sal_pass.letterbox)
    timings["candidates"] = _ms(t)  # the engine adds the windows' time
    return photo, sal


def box_crop(label: str, box: Box, photo: PhotoContext, options: CropOptions, chosen_by: str = OVERRIDE_NAME) -> Crop:
    """The crop of a box override (or of a crop rule, `chosen_by`): exactly `box`, scored as
    the composition score would score it alone, and measured against the face rule (as the
    engine's own crops of the ratio are): a warning when it slices a detected face."""
    width, height = photo.width, photo.height
    x, y, w, h = (np.array([v], np.int64) for v in box.to_list())
    one = Windows(x, y, w, h, scale=np.ones(1))
    features = measure_windows(one, photo.index, photo.faces, width, height, options)
    terms = composition_terms(features, options)
    max_w, max_h = largest_window(width, height, parse_ratio(label))
    report = face_report(tuple(box.to_list()), photo.faces, width, height, options, max_w, max_h)  # type: ignore[arg-type]
    warnings = []
    if report.cut:
        what = "box override" if chosen_by == OVERRIDE_NAME else f"{chosen_by} crop"
        warnings.append(f"the {label} {what} slices {report.cut} detected face(s): kept as given")
    return Crop(
        ratio=label,
        box=box,
        score=float(total_score(terms)[0]),
        breakdown={name: float(values[0]) for name, values in terms.items()},
        saliency_kept=float(features.saliency_kept[0]),
        faces_kept=int(features.faces_kept[0]),
        chosen_by=chosen_by,
        face_report=report,
        warnings=tuple(warnings),
    )


def rule_box(label: str, ratio: float, subject: Subject | None, width: int, height: int,
             options: CropOptions) -> tuple[str, Box] | None:  # fmt: skip
    """(rule name, box) when a crop rule (`autocrop.rules`) decides the crop of `label`, else
    None: the whole photo for a ratio it nearly has, else a plain background's subject."""
    if keeps_whole(width, height, ratio, options):
        return WHOLE_PHOTO, Box(0, 0, width, height)
    if subject is not None:
        box = subject_box(subject, width, height, ratio, options)
        if box is not None:
            return PLAIN_BACKGROUND, box
    return None


def analyse_image(
    decoded: DecodedImage,
    options: CropOptions = _DEFAULT_OPTIONS,
    *,
    saliency: SaliencyPredictor | None = None,
    detector: FaceDetector | None = None,
    ranker: Ranker | None = None,
    _timings: dict[str, float] | None = None,
    _start: float | None = None,
) -> CropResult:
    """`analyse` for an already decoded photo; models default to the process-wide ones."""
    start = _start if _start is not None else time.perf_counter()
    timings = dict(_timings or {})
    predictor = saliency if saliency is not None else load_saliency()
    face_detector = detector if detector is not None else load_face_detector()
    rank_with = ranker if ranker is not None else select_ranker(options)
    width, height = decoded.width, decoded.height
    photo, sal = prepare_photo(decoded, options, predictor, face_detector, timings)
    t = time.perf_counter()
    subject = plain_subject(decoded.rgb, width, height, options)
    crops: list[Crop] = []
    runners_up: dict[str, tuple[Box, ...]] = {}
    for label, ratio in zip(options.ratios, options.ratio_values):
        region = options.box_for(label)
        misfit = None
        if region is not None:  # an exact box: imported here, as most analyses have none
            from .overrides import box_fits, box_pixels

            misfit = box_fits(region, label, width, height)
        if region is not None and misfit is None:
            crops.append(box_crop(label, box_pixels(region, width, height), photo, options))
            runners_up[label] = ()
            continue
        rule = rule_box(label, ratio, subject, width, height, options) if misfit is None else None
        if rule is not None:
            crops.append(box_crop(label, rule[1], photo, options, chosen_by=rule[0]))
            runners_up[label] = ()
            continue
        windows = propose_windows(width, height, ratio, options)
        features = measure_windows(windows, photo.index, photo.faces, width, height, options, heads_of_allowed_only=True,
                                   objects=subject.parts if subject is not None else None)  # fmt: skip
        ranking = rank_candidates(rank_with, photo, windows, features, options, limit=RUNNER_UP_POOL)
        order, score, terms = ranking.order, ranking.score, ranking.terms
        best = int(order[0])
        crops.append(
            Crop(
                ratio=label,
                box=Box(int(windows.x[best]), int(windows.y[best]), int(windows.w[best]), int(windows.h[best])),
                score=float(score[best]),
                breakdown={name: float(values[best]) for name, values in terms.items()},
                saliency_kept=float(features.saliency_kept[best]),
                faces_kept=int(features.faces_kept[best]),
                chosen_by=ranking.chosen_by,
                face_report=face_report(
                    (int(windows.x[best]), int(windows.y[best]), int(windows.w[best]), int(windows.h[best])),
                    photo.faces,
                    width,
                    height,
                    options,
                    windows.w.max(),
                    windows.h.max(),
                ),
                warnings=(f"{misfit}: the box override is set aside for this photo",) if misfit else (),
            )
        )
        runners_up[label] = distinct_runners_up(windows, order, options.debug_candidates)
    timings["candidates"] += _ms(t)
    timings["total"] = _ms(start)

    faces = tuple(Face(Box.from_xyxy(f[0], f[1], f[0] + f[2], f[1] + f[3]), float(f[4])) for f in photo.faces)
    return CropResult(
        width=width,
        height=height,
        crops=tuple(crops),
        faces=faces,
        timings=timings,
        models={"saliency": predictor.name, "faces": face_detector.name, "ranker": rank_with.name},
        saliency=sal,
        candidates=runners_up,
        image=decoded.rgb,
    )


__all__ = ["analyse", "analyse_image", "boosted", "predict_saliency", "prepare_photo", "saliency_pass"]
