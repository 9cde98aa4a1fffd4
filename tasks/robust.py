"""Robust statistics shared by the detector's height prior, the crowd step's planes and its report."""

from __future__ import annotations

import numpy as np

# sigma = MAD_TO_SIGMA x the median absolute deviation, for normally distributed residuals.
MAD_TO_SIGMA = 1.4826


def robust_sigma(d: np.ndarray, least: int = 3) -> float | None:
    """MAD_TO_SIGMA x the median absolute deviation of the finite values of d (N,), or None with fewer
    than `least` of them."""
    d = d[np.isfinite(d)]
    return float(MAD_TO_SIGMA * np.median(np.abs(d - np.median(d)))) if len(d) >= least else None
