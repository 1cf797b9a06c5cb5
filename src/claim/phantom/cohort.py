"""Write a phantom cohort to disk in EMIDEC layout, with its ground truth beside it."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from claim.data.io import write_json
from claim.data.write import write_patient
from claim.errors import ClaimError
from claim.output import staged_output
from claim.phantom.config import PhantomCase, PhantomConfig
from claim.phantom.render import make_phantom_cohort

__all__ = ["write_phantom_cohort", "TRUTH_FILE"]

TRUTH_FILE = "phantom_truth.json"


def write_phantom_cohort(
    out_dir: Path, n_patients: int, seed: int, config: PhantomConfig = PhantomConfig(), *, progress: bool = True,
    overwrite: bool = False,
) -> list[PhantomCase]:
    """Generate ``n_patients`` phantom patients and write them as ``OUT/<id>/{Images,Contours}/<id>.nii.gz``.

    ``OUT/phantom_truth.json`` records, per patient, the true orientation, apex side, levels and whether it is
    pathological, so geometry estimates can be scored against it.
    """
    if n_patients < 1:
        raise ClaimError(f"--patients must be at least 1, got {n_patients}")
    out_dir = Path(out_dir)
    truth = {"seed": seed, "patients": {}}
    record = {"patients": n_patients, "seed": seed, "config": repr(config)}
    with staged_output(out_dir, "phantom", overwrite=overwrite, config=record) as staging:
        cases = make_phantom_cohort(n_patients, seed, config)
        for case in tqdm(cases, desc="writing phantom", unit="patient", disable=not progress, leave=False):
            write_patient(case.patient, staging)
            t = case.truth
            truth["patients"][case.patient.patient_id] = {
                "pathological": t.pathological,
                "origin_screen_deg": t.origin_screen_deg,
                "handedness": t.handedness,
                "apex_first": t.apex_first,
                "levels": list(t.level_per_slice),
            }
        write_json(staging / TRUTH_FILE, truth)
    return cases
