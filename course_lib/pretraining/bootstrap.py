"""Bootstrap confidence intervals: how far a mean over a few dozen questions could move with other questions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_interval(values: Sequence[float], *, resamples: int = 1000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float, float]:
    """The mean of ``values`` and its percentile bootstrap interval: ``(mean, low, high)``.

    Draws ``len(values)`` items with replacement, ``resamples`` times (seeded), and
    returns the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the
    resampled means. For a paired difference (two measurements of the same questions,
    e.g. correct at k = 4 minus correct at k = 0), pass the per-question differences:
    resampling them resamples questions, the same ones for both measurements.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"bootstrap_interval needs a non-empty list of numbers, got shape {x.shape}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)  # (resamples,)
    low, high = np.percentile(means, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(x.mean()), float(low), float(high)
