"""Label ids (EMIDEC convention) and named regions: the one place that knows them."""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "Label",
    "EMIDEC_LABELS",
    "ALL_LABELS",
    "MYOCARDIUM_LABELS",
    "INFARCT_LABELS",
    "parse_label_mapping",
    "apply_label_mapping",
    "myocardium_mask",
    "infarct_mask",
]


class Label(IntEnum):
    """EMIDEC label ids, plus an optional right-ventricle id used only for orientation."""

    BACKGROUND = 0
    CAVITY = 1
    MYOCARDIUM = 2
    INFARCT = 3  # "scar"
    MVO = 4  # persistent microvascular obstruction (no-reflow)
    RV = 5  # not an EMIDEC class: kept only when another dataset's RV label is mapped in


EMIDEC_LABELS: frozenset[int] = frozenset(int(v) for v in (0, 1, 2, 3, 4))
ALL_LABELS: frozenset[int] = EMIDEC_LABELS | {int(Label.RV)}
# The EMIDEC metric convention: myocardium = {2, 3, 4}; infarct = {3, 4}.
MYOCARDIUM_LABELS: tuple[int, ...] = (Label.MYOCARDIUM, Label.INFARCT, Label.MVO)
INFARCT_LABELS: tuple[int, ...] = (Label.INFARCT, Label.MVO)

_NAMES = {label.name.lower(): int(label) for label in Label} | {
    "bg": 0,
    "lv": 1,
    "blood": 1,
    "myo": 2,
    "scar": 3,
    "noreflow": 4,
    "no-reflow": 4,
    "ignore": 0,
}


def parse_label_mapping(text: str) -> dict[int, int]:
    """Parse a declared mapping ``"SRC:DST,SRC:DST"`` from another encoding to claim's ids.

    ``DST`` may be a number or a name (``background``, ``cavity``, ``myocardium``, ``infarct``/``scar``,
    ``mvo``, ``rv``). Source values not listed keep their value. Example: ``"1:rv,2:myocardium,3:cavity"``
    for a dataset that labels RV=1, myocardium=2, LV=3.
    """
    mapping: dict[int, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if ":" not in item:
            raise ValueError(f"label mapping item {item!r} is not SRC:DST (e.g. '3:cavity')")
        src_text, dst_text = (s.strip() for s in item.split(":", 1))
        try:
            src = int(src_text)
        except ValueError as exc:
            raise ValueError(f"label mapping source {src_text!r} is not an integer") from exc
        if dst_text.lstrip("-").isdigit():
            dst = int(dst_text)
        elif dst_text.lower() in _NAMES:
            dst = _NAMES[dst_text.lower()]
        else:
            raise ValueError(f"label mapping target {dst_text!r} is not a number or one of {sorted(_NAMES)}")
        if dst not in ALL_LABELS:
            raise ValueError(f"label mapping target {dst} is not a claim label id {sorted(ALL_LABELS)}")
        mapping[src] = dst
    return mapping


def apply_label_mapping(label_map: np.ndarray, mapping: dict[int, int] | None) -> np.ndarray:
    """Return a new label map with ``mapping`` applied (all sources mapped at once, no chaining)."""
    if not mapping:
        return label_map
    out = label_map.copy()
    for src, dst in mapping.items():
        out[label_map == src] = dst
    return out


def myocardium_mask(label_map: np.ndarray) -> np.ndarray:
    """Boolean mask of the whole myocardium, labels {2, 3, 4}."""
    return np.isin(label_map, MYOCARDIUM_LABELS)


# Label maps are numpy arrays in the data and geometry code, torch tensors in the models.
LabelArray = TypeVar("LabelArray", np.ndarray, "torch.Tensor")


def infarct_mask(label_map: LabelArray) -> LabelArray:
    """Boolean mask of infarct including MVO, labels {3, 4} (EMIDEC metric convention).

    Written with elementwise comparisons so the one definition serves numpy arrays and torch tensors alike.
    """
    return (label_map == Label.INFARCT) | (label_map == Label.MVO)
