"""Classifier two-sample test: can a small CNN, trained from scratch, tell two sets of images apart?

The test is split by group (a patient, or the normal canvas a synthetic patient was painted on), so a classifier
cannot score by recognising a patient it has seen. Each repeat splits the groups of each side into folds, trains on
all folds but one and scores the held-out one; the AUC of each held-out fold is averaged over folds and repeats.
AUC 0.5: indistinguishable; 1: always told apart. The interval resamples groups with replacement (percentile
bootstrap of the same average).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata

__all__ = ["C2stConfig", "DRAWS_KEY", "auc", "classifier_two_sample_test", "combine_c2st", "without_draws"]

DRAWS_KEY = "_bootstrap_draws"


def without_draws(record):
    """``record`` (nested dicts and lists) without the in-memory bootstrap draws, ready for JSON."""
    if isinstance(record, dict):
        return {k: without_draws(v) for k, v in record.items() if k != DRAWS_KEY}
    if isinstance(record, list):
        return [without_draws(v) for v in record]
    return record


@dataclass(frozen=True)
class C2stConfig:
    """Classifier and protocol. ``augment``: random flips and quarter turns (for image crops, whose orientation
    on screen says nothing about realism; off for polar maps, whose axes are anatomy)."""

    repeats: int = 3
    folds: int = 2
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    channels: tuple[int, ...] = (8, 16, 32)
    bootstrap: int = 1000
    augment: bool = True


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``labels`` (1 = positive), ties counted half (Mann-Whitney)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _folds_of(groups: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index per sample: each side's groups shuffled and dealt round-robin (a group never straddles folds)."""
    fold = np.zeros(len(groups), int)
    for side in (False, True):
        names = np.unique(groups[labels == side])
        order = rng.permutation(len(names))
        lookup = {names[i]: j % k for j, i in enumerate(order)}
        for i in np.flatnonzero(labels == side):
            fold[i] = lookup[groups[i]]
    return fold


def _network(shape: tuple[int, int], channels: tuple[int, ...]) -> torch.nn.Module:
    from monai.networks.nets import Classifier

    # Batch norm, not MONAI's default instance norm: instance norm rescales every sample's feature maps, hiding the
    # absolute contrast (crops are in contrast units) that too-bright synthetic scar differs in.
    return Classifier(in_shape=(1, *shape), classes=1, channels=channels, strides=(2,) * len(channels), norm="batch")


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    turns = int(torch.randint(0, 4, (1,), generator=generator))
    batch = torch.rot90(batch, turns, dims=(-2, -1))
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        batch = batch.flip(-1)
    return batch


def _train_and_score(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, config: C2stConfig,
                     seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = _network(x.shape[-2:], config.channels)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    xs, ys = torch.from_numpy(x[train]).float()[:, None], torch.from_numpy(y[train]).float()
    positives, negatives = torch.nonzero(ys > 0.5).ravel(), torch.nonzero(ys < 0.5).ravel()
    half = max(1, config.batch_size // 2)
    net.train()
    for _ in range(config.steps):
        # Balanced batches: the classifier cannot win by predicting the larger side.
        pick = torch.cat([positives[torch.randint(0, len(positives), (half,), generator=generator)],
                          negatives[torch.randint(0, len(negatives), (half,), generator=generator)]])
        batch = xs[pick]
        if config.augment:
            batch = _augment(batch, generator)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(batch).ravel(), ys[pick])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        held_out = torch.from_numpy(x[test]).float()[:, None]
        return torch.sigmoid(net(held_out).ravel()).numpy()


def classifier_two_sample_test(
    first: Sequence[np.ndarray], first_groups: Sequence[str], second: Sequence[np.ndarray],
    second_groups: Sequence[str], config: C2stConfig = C2stConfig(), seed: int = 0,
) -> dict:
    """AUC (with a 95 % group-bootstrap interval) of a CNN telling ``second`` (label 1) from ``first`` (label 0).

    Args:
        first / second: 2-D arrays of one shape (crops or maps), one per sample.
        first_groups / second_groups: the group of each sample (samples of a group are never split).
        config: classifier and protocol.
        seed: every random choice (folds, initialisation, batches, bootstrap) flows from it.

    Returns ``{"auc", "low", "high", "n_first", "n_second", "groups_first", "groups_second", "repeats", "folds"}``
    plus the bootstrap draws under ``DRAWS_KEY`` (strip with ``without_draws`` before writing JSON); NaN AUC when
    either side has fewer groups than folds.
    """
    x = np.asarray(list(first) + list(second), np.float32)
    y = np.concatenate([np.zeros(len(first)), np.ones(len(second))]).astype(np.float32)
    groups = np.asarray([f"a:{g}" for g in first_groups] + [f"b:{g}" for g in second_groups])
    labels = y > 0.5
    n_groups = (len(set(first_groups)), len(set(second_groups)))
    record = {"n_first": len(first), "n_second": len(second), "groups_first": n_groups[0],
              "groups_second": n_groups[1], "repeats": config.repeats, "folds": config.folds}
    if min(n_groups) < config.folds:
        return {"auc": float("nan"), "low": float("nan"), "high": float("nan"), **record,
                DRAWS_KEY: np.full(config.bootstrap, np.nan)}
    splits = []  # (held-out sample indices, their scores) of every repeat and fold
    for repeat in range(config.repeats):
        rng = np.random.default_rng([seed, repeat])
        fold = _folds_of(groups, labels, config.folds, rng)
        for k in range(config.folds):
            test = fold == k
            splits.append((np.flatnonzero(test), _train_and_score(x, y, ~test, test, config,
                                                                  seed * 1000 + repeat * 10 + k)))
    # AUC within each held-out fold, averaged: models of different folds score on different scales, so pooling
    # their scores into one ranking would mix calibration with separability.
    value = float(np.nanmean([auc(scores, labels[idx]) for idx, scores in splits]))
    rng = np.random.default_rng([seed, 99])
    names, group_index = np.unique(groups, return_inverse=True)
    sides = [np.flatnonzero(np.char.startswith(names.astype(str), p)) for p in ("a:", "b:")]
    boot = []
    for _ in range(config.bootstrap):
        counts = np.zeros(len(names), int)
        for side in sides:
            np.add.at(counts, side[rng.integers(0, len(side), len(side))], 1)
        values = []
        for idx, scores in splits:
            times = counts[group_index[idx]]
            values.append(auc(np.repeat(scores, times), np.repeat(labels[idx], times)))
        boot.append(np.nanmean(values) if np.isfinite(values).any() else np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(boot, [2.5, 97.5])
    # The bootstrap draws stay in memory (not in JSON) so independent tests can be averaged (combine_c2st).
    return {"auc": value, "low": float(low), "high": float(high), **record, DRAWS_KEY: np.asarray(boot)}


def combine_c2st(entries: Sequence[dict]) -> dict:
    """Mean AUC of independent two-sample tests (e.g. one per cross-validation fold) and its interval: the same
    percentile bootstrap on the mean of the tests' aligned bootstrap draws (independent tests, independent draws).
    Counts are summed."""
    entries = [e for e in entries if np.isfinite(e.get("auc", np.nan))]
    if not entries:
        return {"auc": float("nan"), "low": float("nan"), "high": float("nan"), "tests": 0}
    with warnings.catch_warnings():  # a draw where every test's resample lost a side stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        draws = np.nanmean(np.stack([e[DRAWS_KEY] for e in entries]), axis=0)
        low, high = np.nanpercentile(draws, [2.5, 97.5])
    counts = {key: int(sum(e[key] for e in entries)) for key in ("n_first", "n_second", "groups_first",
                                                                  "groups_second")}
    return {"auc": float(np.mean([e["auc"] for e in entries])), "low": float(low), "high": float(high),
            "tests": len(entries), "per_test_auc": [float(e["auc"]) for e in entries], **counts,
            "repeats": entries[0]["repeats"], "folds": entries[0]["folds"], DRAWS_KEY: draws}
