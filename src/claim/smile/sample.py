"""``sample_scar_spec``: the one random step. It turns the user's controls and the prior into a ``ScarSpec``.

Order of draws for an ischemic scar: the territory (prior frequencies, among those that can hold the requested
burden), the burden (prior or requested range, truncated to what the territory can hold), the transmurality
(prior, correlated with the burden through a Gaussian copula, or the requested range), then a contiguous set of
segments grown from a seed inside the territory, weighted by the prior's per-territory involvement, until it can
hold the burden with the fitted "fill" (how much of its involved segments a real scar covers), then MVO for
large, highly transmural scars. Non-ischemic patterns draw from ``NONISCHEMIC_DEFAULTS`` and never carry MVO.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from claim.aha.segments import Territory
from claim.errors import ClaimError
from claim.smile.adjacency import is_contiguous, segment_adjacency, territory_of, territory_segments
from claim.smile.blobs import sample_blob_segments
from claim.smile.canvas import ScarCanvas
from claim.smile.prior import Prior, default_prior
from claim.smile.spec import CLINICAL_PATTERNS, NONISCHEMIC_DEFAULTS, Pattern, ScarSpec, SmileConfig

__all__ = ["sample_scar_spec", "MIN_BURDEN", "CAPACITY_MARGIN", "FILL_SPREAD"]

MIN_BURDEN = 0.01  # smallest burden drawn from a prior (a scar of a few pixels is not a useful training mask)
CAPACITY_MARGIN = 0.97  # a target burden stays below this share of what the chosen segments can hold
# The segment set is grown 1 / FILL_SPREAD times larger than the fitted fill implies: the scar peaks in its centre,
# so the set's edge segments stay below the involvement threshold and the measured fill then matches real scars.
FILL_SPREAD = 0.8
_MIDWALL_MAX_WIDTH = 0.8  # a mid-wall band wider than this would reach the endocardium or epicardium
_CAPACITY_KIND = {
    Pattern.ISCHEMIC: "endo",
    Pattern.SUBEPICARDIAL: "epi",
    Pattern.MIDWALL: "band",
    Pattern.PATCHY: "band",
}


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _describe(territory: Territory | None, segments: tuple[int, ...]) -> str:
    listed = ",".join(str(s) for s in segments)
    return f"territory {territory.value} (segments {listed})" if territory else f"segments {listed}"


def _grow(
    rng: np.random.Generator,
    pool: tuple[int, ...],
    weights: dict[int, float],
    enough,
    seeds: tuple[int, ...] | None = None,
) -> tuple[int, ...]:
    """Contiguous set grown inside ``pool`` from a weighted seed (in ``seeds``), adding weighted neighbours."""
    adjacency = segment_adjacency()
    order = sorted(seeds or pool)
    w = np.array([weights.get(s, 0.0) + 0.02 for s in order])
    chosen = {order[int(rng.choice(len(order), p=w / w.sum()))]}
    while not enough(chosen):
        frontier = sorted({n for s in chosen for n in adjacency[s]} & set(pool) - chosen)
        if not frontier:
            break
        w = np.array([weights.get(s, 0.0) + 0.02 for s in frontier])
        chosen.add(frontier[int(rng.choice(len(frontier), p=w / w.sum()))])
    return tuple(sorted(chosen))


class _Request:
    """The controls resolved against one patient's canvas (present segments, pools per territory)."""

    def __init__(self, canvas: ScarCanvas, config: SmileConfig, pattern: Pattern) -> None:
        self.canvas, self.config, self.pattern = canvas, config, pattern
        self.present = canvas.present_segments()
        self.pid = canvas.patient_id
        if config.segments is not None:
            missing = sorted(set(config.segments) - set(self.present))
            if missing:
                raise ClaimError(
                    f"patient {self.pid}: segments {missing} are not in its stack "
                    f"(present: {','.join(map(str, self.present))})"
                )

    def pools(self) -> list[tuple[Territory | None, tuple[int, ...]]]:
        """Candidate (territory, segments the scar may occupy) pairs; see ``SmileConfig.strict_territory``."""
        config, dominance = self.config, self.config.dominance
        if config.segments is not None:
            segments = config.segments
            if config.territory is not None:
                outside = [s for s in segments if territory_of(s, dominance) != config.territory]
                if outside:
                    raise ClaimError(
                        f"patient {self.pid}: segments {outside} are not in territory {config.territory.value} "
                        f"({dominance.value} dominance: {territory_segments(config.territory, dominance)})"
                    )
            if self.pattern in (Pattern.ISCHEMIC, Pattern.MIDWALL, Pattern.SUBEPICARDIAL) and not is_contiguous(
                segments
            ):
                raise ClaimError(
                    f"patient {self.pid}: segments {list(segments)} are not contiguous; {self.pattern.value} scars "
                    "are one connected region (use --pattern patchy for scattered foci)"
                )
            territory = config.territory
            if territory is None and self.pattern == Pattern.ISCHEMIC:
                mass = {
                    t: sum(self.canvas.segment_pixels[s] for s in segments if territory_of(s, dominance) == t)
                    for t in Territory
                }
                territory = max(mass, key=mass.get)
            return [(territory, segments)]
        if config.territory is not None:
            pool = tuple(s for s in territory_segments(config.territory, dominance) if s in self.present)
            if not pool:
                raise ClaimError(f"patient {self.pid}: territory {config.territory.value} has no segment in its stack")
            return [(config.territory, pool)]
        if self.pattern == Pattern.ISCHEMIC:
            pools = [(t, tuple(s for s in territory_segments(t, dominance) if s in self.present)) for t in Territory]
            if not config.strict_territory:  # the scar starts in its territory; the prior says how far it reaches
                pools = [(t, self.present if p else p) for t, p in pools]
            return [(t, p) for t, p in pools if p]
        return [(None, self.present)]

    def capacity(self, segments: tuple[int, ...], extent: float) -> float:
        """Largest burden (fraction) the segments can hold at transmurality ``extent``."""
        kind = _CAPACITY_KIND[self.pattern]
        return float(self.canvas.segment_capacity(kind, extent)[list(segments)].sum() / self.canvas.n_pixels)


def _resolve_pattern(rng: np.random.Generator, config: SmileConfig) -> Pattern:
    if config.pattern != Pattern.MIXED:
        return config.pattern
    patterns = [Pattern(p) for p, _ in config.mixed_weights]
    weights = np.array([w for _, w in config.mixed_weights], dtype=float)
    return patterns[int(rng.choice(len(patterns), p=weights / weights.sum()))]


def sample_scar_spec(
    rng: np.random.Generator, canvas: ScarCanvas, config: SmileConfig = SmileConfig(), prior: Prior | None = None
) -> ScarSpec:
    """Draw the parameters of one mask for a patient.

    Args:
        rng: the only source of randomness.
        canvas: the patient's myocardium (``ScarCanvas.from_geometry``).
        config: the user's controls.
        prior: distributions of real scars (default: the shipped EMIDEC prior).

    Raises:
        ClaimError: a request the patient cannot meet (segments absent, burden above capacity, ...), naming
            the patient and the reason.
    """
    prior = prior or default_prior()
    pattern = _resolve_pattern(rng, config)
    field_seed = int(rng.integers(2**31 - 1))
    if pattern == Pattern.BLOBS:
        if config.burden or config.transmurality or config.mvo_probability:
            raise ClaimError("--pattern blobs reproduces the original SMILE: it has no burden, transmurality or MVO")
        present = set(canvas.present_segments())
        segments = tuple(s for s in sample_blob_segments(rng) if s in present) or tuple(sorted(present))[:1]
        return ScarSpec(Pattern.BLOBS, segments, field_seed=field_seed, dominance=config.dominance)
    if pattern not in CLINICAL_PATTERNS:
        raise ClaimError(f"pattern {pattern.value!r} cannot be sampled")
    request = _Request(canvas, config, pattern)
    if pattern == Pattern.ISCHEMIC:
        return _sample_ischemic(rng, request, prior, field_seed)
    return _sample_nonischemic(rng, request, field_seed)


def _infeasible(request: _Request, burden_lo: float, territory, pool, extent_hi: float, best: float) -> ClaimError:
    return ClaimError(
        f"patient {request.pid}: a burden of at least {_pct(burden_lo)} is more than {_describe(territory, pool)} "
        f"can hold at transmurality <= {_pct(extent_hi)} (at most {_pct(best * CAPACITY_MARGIN)}); "
        "lower --burden, widen --transmurality or allow more segments"
    )


def _sample_ischemic(rng: np.random.Generator, request: _Request, prior: Prior, field_seed: int) -> ScarSpec:
    config = request.config
    pools = request.pools()
    extent_lo, extent_hi = config.transmurality or (0.05, 1.0)
    burden_lo = config.burden[0] if config.burden else MIN_BURDEN
    feasible = [(t, p) for t, p in pools if request.capacity(p, extent_hi) * CAPACITY_MARGIN > burden_lo]
    if not feasible:
        best_t, best_pool = max(pools, key=lambda tp: request.capacity(tp[1], extent_hi))
        raise _infeasible(request, burden_lo, best_t, best_pool, extent_hi, request.capacity(best_pool, extent_hi))
    weights = np.array([prior.territory_probabilities.get(t, 0.0) + 0.01 if t else 1.0 for t, _ in feasible])
    territory, pool = feasible[int(rng.choice(len(feasible), p=weights / weights.sum()))]

    # Burden first (truncated to what the pool can hold at the highest transmurality allowed), then the
    # transmurality from the prior's copula given the burden's rank: large real scars are the transmural ones.
    ceiling = request.capacity(pool, extent_hi) * CAPACITY_MARGIN
    if config.burden:
        burden = float(rng.uniform(burden_lo, min(config.burden[1], ceiling)))
    else:
        burden = prior.sample_quantile(rng, prior.burden_quantiles, MIN_BURDEN, ceiling)
    if config.transmurality:
        extent = float(rng.uniform(extent_lo, extent_hi))
    else:
        rho = prior.burden_transmurality_copula
        z = rho * special.ndtri(np.clip(prior.cdf(prior.burden_quantiles, burden), 1e-6, 1 - 1e-6))
        level = float(special.ndtr(z + np.sqrt(1.0 - rho**2) * rng.normal()))
        extent = float(np.clip(prior.quantile(prior.transmurality_quantiles, level), 0.1, 1.0))
    # Raise the transmurality just enough when the pool cannot hold the burden at the drawn extent.
    if request.capacity(pool, extent) * CAPACITY_MARGIN <= burden:
        candidates = np.linspace(extent, extent_hi, 64)
        extent = float(next((e for e in candidates if request.capacity(pool, e) * CAPACITY_MARGIN > burden), extent_hi))
        burden = min(burden, request.capacity(pool, extent) * CAPACITY_MARGIN)

    if config.segments is not None:
        segments = pool
    else:
        fill = prior.sample_quantile(rng, prior.fill_quantiles, 0.15, 1.0)
        involvement = prior.segment_involvement.get(territory) if territory else None
        weights_by_segment = {s: (involvement[s - 1] if involvement else 1.0) for s in pool}
        n = request.canvas.n_pixels
        sizes = request.canvas.segment_pixels

        def enough(chosen: set[int]) -> bool:
            mass = sum(sizes[s] for s in chosen) / n
            return (
                mass * fill * FILL_SPREAD >= burden
                and request.capacity(tuple(chosen), extent) * CAPACITY_MARGIN > burden
            )

        seeds = tuple(s for s in pool if territory is None or territory_of(s, config.dominance) == territory)
        segments = _grow(rng, pool, weights_by_segment, enough, seeds or None)
        burden = min(burden, request.capacity(segments, extent) * CAPACITY_MARGIN)

    probability = prior.mvo_probability if config.mvo_probability is None else config.mvo_probability
    eligible = burden >= prior.mvo_min_burden and extent >= prior.mvo_min_transmurality
    mvo = bool(eligible and rng.random() < probability)
    mvo_fraction = prior.sample_quantile(rng, prior.mvo_fraction_quantiles, 0.01, 0.6) if mvo else 0.0
    return ScarSpec(
        pattern=Pattern.ISCHEMIC,
        segments=segments,
        territory=territory,
        target_burden=round(burden, 6),
        transmurality=round(extent, 6),
        mvo=mvo,
        mvo_fraction=round(mvo_fraction, 6),
        field_seed=field_seed,
        dominance=config.dominance,
    )


def _sample_nonischemic(rng: np.random.Generator, request: _Request, field_seed: int) -> ScarSpec:
    config, pattern = request.config, request.pattern
    defaults = NONISCHEMIC_DEFAULTS[pattern]
    territory, pool = request.pools()[0]
    extent_lo, extent_hi = config.transmurality or defaults.transmurality
    if pattern in (Pattern.MIDWALL, Pattern.PATCHY):
        extent_lo, extent_hi = min(extent_lo, _MIDWALL_MAX_WIDTH), min(extent_hi, _MIDWALL_MAX_WIDTH)
    # Bands are approximated by their capacity around mid-wall; keep a wider margin than for ischemic scars.
    margin = CAPACITY_MARGIN if pattern == Pattern.SUBEPICARDIAL else 0.85
    burden_lo, burden_hi = config.burden or defaults.burden
    best = request.capacity(pool, extent_hi)
    if best * margin <= burden_lo:
        raise _infeasible(request, burden_lo, territory, pool, extent_hi, best * margin / CAPACITY_MARGIN)
    extent = float(rng.uniform(extent_lo, extent_hi))
    if request.capacity(pool, extent) * margin <= burden_lo:
        candidates = np.linspace(extent, extent_hi, 64)
        extent = float(next(e for e in candidates if request.capacity(pool, e) * margin > burden_lo))
    burden = float(rng.uniform(burden_lo, min(burden_hi, request.capacity(pool, extent) * margin)))
    weights = {s: (defaults.preference if s in defaults.preferred else 1.0) for s in pool}
    if config.segments is not None:
        segments = pool
    elif pattern == Pattern.PATCHY:
        n_foci = int(rng.integers(defaults.segments[0], defaults.segments[1] + 1))
        order = sorted(pool)
        w = np.array([weights[s] for s in order])
        picked = rng.choice(len(order), size=len(order), replace=False, p=w / w.sum())
        chosen = [order[int(i)] for i in picked[: min(n_foci, len(order))]]
        for i in picked[len(chosen) :]:  # more foci until the burden fits
            if request.capacity(tuple(chosen), extent) * margin > burden:
                break
            chosen.append(order[int(i)])
        segments = tuple(sorted(chosen))
    else:
        fill = float(rng.uniform(0.4, 0.8))  # lateral share of the band the scar covers
        n_min = int(rng.integers(defaults.segments[0], defaults.segments[1] + 1))

        def enough(chosen: set[int]) -> bool:
            capacity = request.capacity(tuple(chosen), extent)
            return capacity * fill >= burden and capacity * margin > burden and len(chosen) >= n_min

        segments = _grow(rng, pool, weights, enough)
    burden = min(burden, request.capacity(segments, extent) * margin)
    return ScarSpec(
        pattern=pattern,
        segments=segments,
        territory=territory,
        target_burden=round(burden, 6),
        transmurality=round(extent, 6),
        field_seed=field_seed,
        dominance=config.dominance,
    )
