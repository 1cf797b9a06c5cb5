"""Scar-intensity histograms (the generator's condition) and seeded k-means centres of real histograms."""

from __future__ import annotations

import numpy as np

__all__ = ["scar_histogram", "kmeans_centres", "nearest_centre", "perturb_histogram", "histogram_wasserstein"]


def scar_histogram(image: np.ndarray, scar_mask: np.ndarray, bins: int = 16) -> np.ndarray:
    """Normalised histogram of ``image`` values inside ``scar_mask``; ``bins`` equal bins over [-1, 1].

    Args:
        image: ``(H, W)`` intensities in [-1, 1].
        scar_mask: ``(H, W)`` boolean.
        bins: number of bins (LeFusion 16, bin i = [-1 + 2i/bins, -1 + 2(i+1)/bins)).

    Returns:
        ``(bins,)`` float32 summing to 1, or zeros when the mask is empty (as LeFusion).
    """
    values = np.asarray(image, dtype=np.float64)[np.asarray(scar_mask, dtype=bool)]
    if values.size == 0:
        return np.zeros(bins, dtype=np.float32)
    counts, _ = np.histogram(np.clip(values, -1.0, 1.0), bins=bins, range=(-1.0, 1.0))
    return (counts / values.size).astype(np.float32)


def kmeans_centres(histograms: np.ndarray, k: int, seed: int = 0, iterations: int = 100) -> np.ndarray:
    """k-means (Lloyd, k-means++ initialisation) of histograms; deterministic for a seed.

    Args:
        histograms: ``(N, bins)``.
        k: number of centres (reduced to N when fewer histograms exist).
        seed: seed of the initialisation.

    Returns:
        ``(k, bins)`` float32 centres sorted by mean intensity (darkest first) so indices are stable.
    """
    data = np.asarray(histograms, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"need a non-empty (N, bins) array of histograms, got shape {data.shape}")
    k = max(1, min(int(k), data.shape[0]))
    rng = np.random.default_rng(seed)
    centres = [data[rng.integers(data.shape[0])]]
    for _ in range(1, k):
        d2 = np.min(((data[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        index = rng.choice(data.shape[0], p=d2 / total) if total > 0 else rng.integers(data.shape[0])
        centres.append(data[index])
    c = np.asarray(centres)
    for _ in range(iterations):
        assign = nearest_centre(data, c)
        new = np.stack([data[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    bins = data.shape[1]
    mids = -1.0 + (np.arange(bins) + 0.5) * 2.0 / bins
    order = np.argsort((c * mids).sum(1) / np.maximum(c.sum(1), 1e-12))
    return c[order].astype(np.float32)


def nearest_centre(histograms: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(N,)`` index of each histogram's nearest centre (squared Euclidean distance), the k-means assignment."""
    return ((np.asarray(histograms)[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1).argmin(1)


def perturb_histogram(hist: np.ndarray, rng: np.random.Generator, amount: float = 0.1) -> np.ndarray:
    """LeFusion's sampling-time jitter: each bin moves by at most ``amount`` of its own value (not renormalised)."""
    z = rng.standard_normal(hist.shape)
    z = z - z.mean()
    z = z / max(np.abs(z).max(), 1e-12)
    return (hist + z * amount * np.abs(hist)).astype(np.float32)


def histogram_wasserstein(first: np.ndarray, second: np.ndarray) -> float:
    """1-D Wasserstein distance between two histograms on ``scar_histogram``'s bins over [-1, 1] (intensity units):
    how far the mass of one must move to become the other. NaN when either is empty.

    ``claim.joint.consistency.histogram_loss`` is the same distance, differentiable, on soft histograms.
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.sum() <= 0 or b.sum() <= 0:
        return float("nan")
    width = 2.0 / a.size
    return float(np.abs(np.cumsum(a / a.sum()) - np.cumsum(b / b.sum())).sum() * width)
