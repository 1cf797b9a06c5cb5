"""What a SMILE mask is made of: the pattern words, the sampled ``ScarSpec`` and the user's ``SmileConfig``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum

from claim.aha.segments import Territory
from claim.errors import ClaimError
from claim.smile.adjacency import Dominance

__all__ = ["Pattern", "CLINICAL_PATTERNS", "ScarSpec", "SmileConfig", "NONISCHEMIC_DEFAULTS", "PatternDefaults"]


class Pattern(StrEnum):
    """Scar patterns. ``mixed`` is a request only: each mask resolves it to one of the four clinical patterns."""

    ISCHEMIC = "ischemic"  # subendocardial wavefront in one coronary territory
    MIDWALL = "midwall"  # stripe in the middle of the wall (e.g. dilated cardiomyopathy), often septal
    SUBEPICARDIAL = "subepicardial"  # band under the epicardium (e.g. myocarditis), often inferolateral
    PATCHY = "patchy"  # several small foci (e.g. sarcoidosis)
    MIXED = "mixed"
    BLOBS = "blobs"  # the original SMILE's random porous blobs, kept as a baseline


CLINICAL_PATTERNS: tuple[Pattern, ...] = (Pattern.ISCHEMIC, Pattern.MIDWALL, Pattern.SUBEPICARDIAL, Pattern.PATCHY)


@dataclass(frozen=True)
class PatternDefaults:
    """Defaults of a non-ischemic pattern when neither the user nor the prior gives a value.

    Attributes:
        burden: range of the scar's share of the LV myocardium (fractions).
        transmurality: range of the band width (mid-wall, patchy) or depth from the epicardium (subepicardial),
            as a fraction of the wall.
        preferred: segments where the pattern is typical, weighted ``preference`` times more when seeding.
        segments: how many segments (contiguous for bands, scattered foci for patchy) to start from.
    """

    burden: tuple[float, float]
    transmurality: tuple[float, float]
    preferred: tuple[int, ...]
    preference: float = 4.0
    segments: tuple[int, int] = (1, 3)


# Clinical tables: non-ischemic LGE is usually small. Mid-wall stripes are typically septal (dilated cardiomyopathy,
# Assomull et al. JACC 2006); subepicardial LGE of myocarditis is typically inferolateral (Mahrholdt et al.
# Circulation 2004); sarcoid/patchy LGE is multifocal and often basal-septal/lateral.
NONISCHEMIC_DEFAULTS: dict[Pattern, PatternDefaults] = {
    Pattern.MIDWALL: PatternDefaults((0.02, 0.07), (0.2, 0.45), (2, 3, 8, 9, 14), segments=(1, 3)),
    Pattern.SUBEPICARDIAL: PatternDefaults((0.03, 0.12), (0.2, 0.6), (4, 5, 10, 11, 15, 16), segments=(1, 3)),
    Pattern.PATCHY: PatternDefaults((0.02, 0.08), (0.2, 0.5), (2, 3, 5, 6, 8, 9, 11, 12), 2.0, segments=(2, 4)),
}


@dataclass(frozen=True)
class ScarSpec:
    """The parameters of one mask: everything ``render_scar`` needs to draw it again, deterministically.

    Attributes:
        pattern: one of ``CLINICAL_PATTERNS`` or ``blobs``.
        segments: AHA segments the scar may occupy (sorted); the scar never leaves them.
        territory: coronary territory of an ischemic scar (or the one requested), else None.
        target_burden: scar (incl. MVO) as a fraction of the LV myocardium; None = no burden control (blobs).
        transmurality: ischemic: peak transmural extent from the endocardium; subepicardial: from the epicardium;
            mid-wall and patchy: band width; all as a fraction of the wall. None for blobs.
        mvo: whether the scar has a microvascular-obstruction core.
        mvo_fraction: MVO share of the scar when ``mvo``.
        field_seed: seeds the smooth noise fields (borders, foci, blobs) that the renderer draws.
        dominance: coronary dominance the territory refers to.
    """

    pattern: Pattern
    segments: tuple[int, ...]
    territory: Territory | None = None
    target_burden: float | None = None
    transmurality: float | None = None
    mvo: bool = False
    mvo_fraction: float = 0.0
    field_seed: int = 0
    dominance: Dominance = Dominance.RIGHT

    def __post_init__(self) -> None:
        if self.pattern == Pattern.MIXED:
            raise ValueError("a ScarSpec holds a resolved pattern, not 'mixed'")
        if not self.segments or any(not 1 <= s <= 17 for s in self.segments):
            raise ValueError(f"segments {self.segments} must be a non-empty set of AHA segments 1-17")
        object.__setattr__(self, "segments", tuple(sorted({int(s) for s in self.segments})))

    def to_json(self) -> dict:
        record = asdict(self)
        record["pattern"] = self.pattern.value
        record["territory"] = self.territory.value if self.territory else None
        record["dominance"] = self.dominance.value
        record["segments"] = list(self.segments)
        return record

    @classmethod
    def from_json(cls, record: dict) -> ScarSpec:
        values = dict(record)
        values["pattern"] = Pattern(values["pattern"])
        values["territory"] = Territory(values["territory"]) if values.get("territory") else None
        values["dominance"] = Dominance(values.get("dominance", Dominance.RIGHT))
        values["segments"] = tuple(values["segments"])
        return cls(**values)


def _check_range(name: str, value: tuple[float, float] | None, low: float) -> None:
    if value is None:
        return
    lo, hi = value
    if not (low <= lo <= hi <= 1.0):
        raise ClaimError(f"{name} range {lo * 100:g}-{hi * 100:g} % must satisfy {low * 100:g} <= LO <= HI <= 100")


@dataclass(frozen=True)
class SmileConfig:
    """The user's controls; anything left None comes from the prior (ischemic) or the pattern defaults.

    Attributes:
        pattern: requested pattern (``mixed`` draws one of ``mixed_weights`` per mask).
        territory: restrict to one coronary territory (None = any).
        segments: restrict to these AHA segments (None = choose).
        burden: ``(lo, hi)`` scar share of the LV myocardium, fractions.
        transmurality: ``(lo, hi)`` fractions of the wall (see ``ScarSpec.transmurality``).
        mvo_probability: chance of MVO in a large, highly transmural ischemic scar (None = prior's value).
        dominance: coronary dominance for territories.
        strict_territory: keep an ischemic scar whose territory is drawn from the prior inside that territory's
            textbook segments. Off by default: the scar starts in its territory and grows into contiguous segments
            beyond it as often as the fitted real scars do (the prior's per-territory involvement), because real
            scars do: kept strict, SMILE never scarred the LCx segments 5, 6, 11, 12, 16 that the LAD and RCA
            scars of EMIDEC reach (LCx itself is 6 % of its scars), a 120-degree hole a classifier read at once
            (``benchmarks/mask_shape.py``, README). A requested territory or segment list is always strict.
        mixed_weights: pattern probabilities for ``mixed``.
    """

    pattern: Pattern = Pattern.ISCHEMIC
    territory: Territory | None = None
    segments: tuple[int, ...] | None = None
    burden: tuple[float, float] | None = None
    transmurality: tuple[float, float] | None = None
    mvo_probability: float | None = None
    dominance: Dominance = Dominance.RIGHT
    strict_territory: bool = False
    mixed_weights: tuple[tuple[Pattern, float], ...] = field(
        default=(
            (Pattern.ISCHEMIC, 0.55),
            (Pattern.MIDWALL, 0.15),
            (Pattern.SUBEPICARDIAL, 0.15),
            (Pattern.PATCHY, 0.15),
        )
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", Pattern(self.pattern))
        object.__setattr__(self, "dominance", Dominance(self.dominance))
        if self.territory is not None:
            object.__setattr__(self, "territory", Territory(self.territory))
        if self.segments is not None:
            bad = [s for s in self.segments if not 1 <= int(s) <= 17]
            if bad or not self.segments:
                raise ClaimError(f"segments {list(self.segments)}: each must be an AHA segment 1-17")
            object.__setattr__(self, "segments", tuple(sorted({int(s) for s in self.segments})))
        _check_range("burden", self.burden, 0.0)
        _check_range("transmurality", self.transmurality, 0.01)
        if self.burden is not None and self.burden[1] <= 0.0:
            raise ClaimError("burden range must allow a scar (HI > 0 %)")
        if self.mvo_probability is not None and not 0.0 <= self.mvo_probability <= 1.0:
            raise ClaimError(f"MVO probability {self.mvo_probability} must lie in [0, 1]")
        if self.pattern == Pattern.MIXED:
            weights = [w for _, w in self.mixed_weights]
            if any(w < 0 for w in weights) or sum(weights) <= 0:
                raise ClaimError(f"mixed pattern weights {self.mixed_weights} must be >= 0 and not all zero")
            if any(Pattern(p) not in CLINICAL_PATTERNS for p, _ in self.mixed_weights):
                raise ClaimError(f"mixed pattern weights may only name {[p.value for p in CLINICAL_PATTERNS]}")

    @classmethod
    def from_json(cls, record: dict) -> SmileConfig:
        """The config ``to_json`` wrote (``claim masks``'s ``config.json``); unknown keys are an error."""
        if not isinstance(record, dict):
            raise ClaimError(f"SMILE config must be a JSON object, got {type(record).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ClaimError(f"unknown SMILE config keys {unknown}")
        data = dict(record)
        for key in ("segments", "burden", "transmurality"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        if isinstance(data.get("mixed_weights"), dict):
            data["mixed_weights"] = tuple((Pattern(k), float(v)) for k, v in data["mixed_weights"].items())
        return cls(**data)

    def to_json(self) -> dict:
        return {
            "pattern": self.pattern.value,
            "territory": self.territory.value if self.territory else None,
            "segments": list(self.segments) if self.segments else None,
            "burden": list(self.burden) if self.burden else None,
            "transmurality": list(self.transmurality) if self.transmurality else None,
            "mvo_probability": self.mvo_probability,
            "dominance": self.dominance.value,
            "strict_territory": self.strict_territory,
            "mixed_weights": {Pattern(p).value: w for p, w in self.mixed_weights},
        }
