"""``claim masks`` stage: SMILE masks for every patient of a folder, and fitting a prior from a folder's real scars.

Folder in, folder (or prior file) out; the sampling and the statistics themselves live in ``claim.smile``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from claim import __version__
from claim.aha.config import AhaConfig, geometry_for
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.data.patient import Patient
from claim.data.write import check_output_location, write_label_maps
from claim.errors import ClaimError
from claim.labels import Label, infarct_mask, myocardium_mask
from claim.output import check_new_file, staged_output
from claim.report.figures import save_bullseye
from claim.smile.adjacency import Dominance
from claim.smile.canvas import ScarCanvas
from claim.smile.prior import Prior, default_prior, fit_prior, load_prior, save_prior
from claim.smile.realism import INVOLVEMENT_THRESHOLD, involvement_frequency, label_map_statistics, scar_statistics
from claim.smile.sampler import SmileSampler
from claim.smile.spec import SmileConfig

__all__ = ["MasksConfig", "run_masks", "fit_prior_from_folder", "run_fit_prior", "write_mask", "MASKS_FILE",
           "BULLSEYE_FILE"]

MASKS_FILE = "masks.json"
BULLSEYE_FILE = "bullseye_frequency.png"


@dataclass(frozen=True)
class MasksConfig:
    """Options of ``claim masks``.

    Attributes:
        smile: the scar controls.
        aha: orientation, handedness and label mapping used for the geometry.
        per_patient: masks per source patient (ids ``<patient>_smile1`` ...).
        seed: mask ``k`` of patient ``i`` (sorted order) uses ``np.random.default_rng([seed, i, k])``.
        prior_path: prior JSON (None: the shipped EMIDEC prior).
    """

    smile: SmileConfig = field(default_factory=SmileConfig)
    aha: AhaConfig = field(default_factory=lambda: AhaConfig(bullseye=False))
    per_patient: int = 1
    seed: int = 0
    prior_path: str | None = None

    def __post_init__(self) -> None:
        if self.per_patient < 1:
            raise ClaimError(f"--per-patient must be at least 1, got {self.per_patient}")
        if self.seed < 0:
            raise ClaimError(f"--seed must be >= 0, got {self.seed}")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def run_masks(data_dir: Path, out_dir: Path, config: MasksConfig = MasksConfig(), *, progress: bool = True,
              overwrite: bool = False) -> list:
    """Draw ``config.per_patient`` masks on every patient of ``data_dir`` and write them under ``out_dir``.

    Writes new label maps mirroring the input layout (PNG ``OUT/labels/<id>_slice<k>.png``, EMIDEC
    ``OUT/<id>/Contours/<id>.nii.gz``, nnU-Net ``OUT/labelsTr/<id>.nii.gz``), ``OUT/masks.json`` (one entry per
    mask), ``OUT/bullseye_frequency.png`` and ``OUT/config.json``.

    Returns:
        The entries written to ``masks.json``.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    check_output_location(out_dir, data_dir)
    with staged_output(out_dir, "masks", overwrite=overwrite, config=None,
                       inputs=[data_dir, config.prior_path]) as out_dir:
        prior = load_prior(Path(config.prior_path)) if config.prior_path else default_prior()
        patients = read_dataset(data_dir, label_mapping=config.aha.label_mapping, progress=progress)
        entries, stats = [], []
        total = len(patients) * config.per_patient
        with tqdm(total=total, desc="SMILE masks", unit="mask", disable=not progress) as bar:
            for i, patient in enumerate(patients):
                sampler = SmileSampler(geometry_for(patient, config.aha), patient.label_maps, config.smile, prior)
                source_files = [_relative(p, data_dir) for p in patient.label_paths]
                for k in range(1, config.per_patient + 1):
                    result = sampler.sample_result(np.random.default_rng([config.seed, i, k]))
                    label_maps = result.label_maps(patient.label_maps)
                    new_id = f"{patient.patient_id}_smile{k}"
                    written = write_label_maps(
                        patient.with_arrays(patient_id=new_id, label_maps=label_maps), out_dir, label_maps
                    )
                    record = scar_statistics(
                        sampler.canvas,
                        np.isin(np.arange(sampler.canvas.n_pixels), result.scar_pixels),
                        np.isin(np.arange(sampler.canvas.n_pixels), result.mvo_pixels),
                        config.smile.dominance,
                    )
                    stats.append(record)
                    spec = result.spec
                    entries.append(
                        {
                            "id": new_id,
                            "source_id": patient.patient_id,
                            "pattern": spec.pattern.value,
                            "territory": spec.territory.value if spec.territory else None,
                            "segments": list(spec.segments),
                            "target_burden": spec.target_burden,
                            "achieved_burden": round(result.achieved_burden, 6),
                            "transmurality": spec.transmurality,
                            "mvo": bool(result.mvo_pixels.size),
                            "seed": [config.seed, i, k],
                            "files": [_relative(p, out_dir) for p in written],
                            "source_files": source_files,
                            "involved_segments": list(record.involved),
                            "mvo_fraction": round(record.mvo_fraction, 6),
                            "spec": spec.to_json(),
                        }
                    )
                    bar.update()
        write_json(out_dir / MASKS_FILE, entries)
        frequency = involvement_frequency(stats) * 100.0
        save_bullseye(
            [
                (
                    f"segments involved (% of {len(stats)} masks)",
                    {s + 1: float(v) for s, v in enumerate(frequency)},
                    {"cmap": "magma", "vmin": 0.0, "vmax": 100.0},
                )
            ],
            out_dir / BULLSEYE_FILE,
            suptitle=f"SMILE {config.smile.pattern.value}: segment involved = scar on >= "
            f"{100 * INVOLVEMENT_THRESHOLD:.0f} % of it",
        )
        write_json(
            out_dir / "config.json",
            {
                "command": "masks",
                "claim_version": __version__,
                "data": str(data_dir),
                "seed": config.seed,
                "per_patient": config.per_patient,
                "rng": "mask k of patient i (sorted ids, from 0) uses np.random.default_rng([seed, i, k])",
                "smile": config.smile.to_json(),
                "orientation": config.aha.orientation,
                "handedness": config.aha.handedness.value,
                "label_mapping": config.aha.label_mapping,
                "prior": {"path": config.prior_path, "source": prior.source, "n_patients": prior.n_patients},
            },
        )
        return entries


def fit_prior_from_folder(
    data_dir: Path,
    *,
    aha: AhaConfig = AhaConfig(bullseye=False),
    dominance: Dominance = Dominance.RIGHT,
    patient_ids: set[str] | None = None,
    progress: bool = False,
) -> Prior:
    """Fit a prior from the real scars (labels 3, 4) of the pathological patients of a folder.

    Args:
        data_dir: labelled data (any layout).
        aha: geometry options (orientation, handedness, label mapping).
        dominance: dominance used for territories.
        patient_ids: restrict to these patients (e.g. a training split).
        progress: show a progress bar.
    """
    data_dir = Path(data_dir)
    patients = read_dataset(data_dir, label_mapping=aha.label_mapping, progress=progress)
    scarred = [p for p in patients if p.has_infarct and (patient_ids is None or p.patient_id in patient_ids)]
    if not scarred:
        raise ClaimError(f"{data_dir}: no patient with scar (labels 3/4) to fit a prior from")
    stats = [
        label_map_statistics(ScarCanvas.from_geometry(geometry_for(p, aha)), p.label_maps, dominance)
        for p in tqdm(scarred, desc="fitting prior", unit="patient", disable=not progress)
    ]
    return fit_prior(
        stats,
        source=f"{data_dir.name}: real scars of {len(stats)} pathological patients ({patients[0].layout.value} layout)",
        dominance=dominance,
        notes={
            "fitted_with": "claim masks --fit-prior",
            "orientation": aha.orientation,
            "handedness": aha.handedness.value,
        },
    )


def run_fit_prior(data_dir: Path, out_file: Path, *, aha: AhaConfig, dominance: Dominance, progress: bool,
                  overwrite: bool = False) -> Prior:
    """Fit a prior from ``data_dir`` and save it as ``out_file`` (never inside the input folder, never over an
    existing file unless ``overwrite``)."""
    out_file = check_new_file(out_file, overwrite=overwrite, flag="-o/--out (the prior JSON)")
    check_output_location(out_file.parent / out_file.name, Path(data_dir))
    prior = fit_prior_from_folder(data_dir, aha=aha, dominance=dominance, progress=progress)
    save_prior(prior, out_file)
    return prior


def write_mask(root: Path, canvas: Patient, mask_id: str, label_maps: np.ndarray, extra: dict) -> dict:
    """Write one mask's label maps on ``canvas``'s grid under ``root`` and return its ``masks.json`` entry.

    The entry holds what ``claim generate`` reads (``id``, ``source_id``, ``files``) plus the burden, whether it
    has MVO, and ``extra`` (how the mask was made); masks drawn by the study are written this way.
    """
    files = write_label_maps(canvas.with_arrays(patient_id=mask_id), root, label_maps)
    scar = infarct_mask(label_maps)
    return {
        "id": mask_id,
        "source_id": canvas.patient_id,
        "files": [str(f.relative_to(root)) for f in files],
        "source_files": [str(p) for p in canvas.label_paths],
        "burden": float(scar.sum() / max(int(myocardium_mask(label_maps).sum()), 1)),
        "mvo": bool((label_maps == Label.MVO).any()),
        **extra,
    }
