"""Fixation points -> binary fixation maps and ground-truth densities (EVALUATION.md).

The density is the fixation map blurred with a Gaussian of sigma = 0.03 x max(width, height)
pixels (24 px on OSIE's 800x600, 19.2 px on EyeCrowd's 640x480). The blur is
`cv2.GaussianBlur` with an explicit kernel of radius ceil(4 sigma) and zero padding
(`BORDER_CONSTANT`): zero padding is what "blur the point image" means (mass that falls
past the edge leaves the image, as with scipy's `gaussian_filter(mode="constant")`), whereas
OpenCV's default reflect-101 border would fold it back and brighten the edges; 4 sigma
keeps all but 6e-5 of each Gaussian's mass, the same truncation scipy uses by default, and
cv2's separable float32 filter is several times faster than scipy's on these sizes, which
matters because training builds a density per image per epoch.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Ground-truth blur, as a fraction of the image's long side (EVALUATION.md).
DENSITY_SIGMA_FRAC = 0.03
#: Kernel radius in sigmas; the Gaussian's tails beyond it hold < 1e-4 of its mass.
KERNEL_RADIUS_SIGMAS = 4.0


def fixation_pixels(
    fixations: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels (x, y) points fall on: nearest pixel, clipped into the image."""
    raw = np.asarray(fixations, dtype=np.float64).reshape(-1, 2)
    pts = raw[np.isfinite(raw).all(axis=1)]
    # floor(v + 0.5) rounds halves up (np.round would round them to even), matching the
    # loaders' "inside" test -0.5 <= v < size - 0.5.
    cols = np.clip(np.floor(pts[:, 0] + 0.5), 0, width - 1).astype(np.intp)
    rows = np.clip(np.floor(pts[:, 1] + 0.5), 0, height - 1).astype(np.intp)
    return rows, cols


def fixation_map(fixations: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bool HxW map with True at each fixation pixel (a pixel hit twice is still just True)."""
    fmap = np.zeros((height, width), dtype=bool)
    rows, cols = fixation_pixels(fixations, height, width)
    fmap[rows, cols] = True
    return fmap


def density_sigma(height: int, width: int, sigma_frac: float = DENSITY_SIGMA_FRAC) -> float:
    """Gaussian sigma in pixels for an image of this size: sigma_frac x the long side."""
    return sigma_frac * max(height, width)


def density_map(
    fixations: np.ndarray, height: int, width: int, sigma_frac: float = DENSITY_SIGMA_FRAC
) -> np.ndarray:
    """Float32 HxW ground-truth density: the fixation map blurred (not normalised)."""
    return blur_like_density(fixation_map(fixations, height, width), sigma_frac)


def blur_like_density(image: np.ndarray, sigma_frac: float = DENSITY_SIGMA_FRAC) -> np.ndarray:
    """Float32 `image` (HxW) blurred as the ground truth is: sigma `sigma_frac` x the long
    side, kernel radius KERNEL_RADIUS_SIGMAS sigmas, zero padding."""
    sigma = density_sigma(*image.shape[:2], sigma_frac)
    ksize = 2 * math.ceil(KERNEL_RADIUS_SIGMAS * sigma) + 1
    return cv2.GaussianBlur(
        image.astype(np.float32), (ksize, ksize), sigmaX=sigma, sigmaY=sigma,
        borderType=cv2.BORDER_CONSTANT,
    )
