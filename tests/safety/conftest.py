"""A small world to misuse: phantom patients in three layouts (8- and 16-bit PNG too), tiny trained models, masks."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from claim.cli import main
from claim.data.layouts import read_dataset
from claim.data.patient import Layout
from claim.data.write import write_patient
from claim.generator.train import train_generator
from claim.phantom import write_phantom_cohort
from claim.segmentation.config import SegmenterConfig
from claim.segmentation.train import train_segmenter
from tests.conftest import SMALL
from tests.generator.conftest import TINY

SEG = SegmenterConfig(crop_size=32, filters=(4, 8, 16), batch_size=2, steps=2, val_every=2, lr=1e-2)


@dataclass(frozen=True)
class World:
    root: Path
    emidec: Path
    png: Path
    png16: Path
    generator: Path
    segmenter: Path
    masks: Path
    masks16: Path


def png_copy(patients, root: Path, bits: int = 8) -> Path:
    top = 255.0 if bits == 8 else 4095.0  # 12-bit scanner range stored in 16-bit PNGs
    for patient in patients:
        scaled = patient.images / max(float(patient.images.max()), 1.0) * top
        extra = {**patient.extra, "png_dtype": "uint8" if bits == 8 else "uint16"}
        write_patient(replace(patient, images=scaled, layout=Layout.PNG, image_paths=(), label_paths=(),
                              extra=extra), root)
    return root


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """Run a command; its error output must be at most one line and never a traceback."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse: bad flag values
        code = int(exc.code)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line and "it/s" not in line]
    assert len([line for line in lines if "error" in line]) <= 1, err
    return code, err


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("safety")
    emidec = root / "emidec"
    write_phantom_cohort(emidec, 6, seed=11, config=SMALL, progress=False)  # 3 with scar: enough for a prior
    patients = read_dataset(emidec)
    png, png16 = png_copy(patients, root / "png"), png_copy(patients, root / "png16", bits=16)
    generator = train_generator(emidec, root / "gen", TINY.replace(steps=2), seed=0, progress=False).checkpoint
    segmenter = train_segmenter([emidec], root / "seg", SEG, seed=0, progress=False).checkpoint
    for data, masks in ((png, root / "masks"), (png16, root / "masks16")):
        assert main(["masks", "--data", str(data), "--out", str(masks), "--seed", "1"]) == 0
    return World(root, emidec, png, png16, generator, segmenter, root / "masks", root / "masks16")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def flip_bytes(path: Path, count: int = 64, seed: int = 0) -> Path:
    """Flip ``count`` bytes in the middle third of a file (where a checkpoint's tensors lie)."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for i in rng.choice(np.arange(len(data) // 3, 2 * len(data) // 3), size=count, replace=False):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path
