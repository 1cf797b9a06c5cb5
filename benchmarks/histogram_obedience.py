"""Does painted scar match the intensity histogram the generator was asked for?

For every painted slice of one or more ``claim generate`` folders: the scar's intensity histogram (label 3, after the
canvas patient's normalisation, the generator's own) against the condition the generator got (``hist_condition``
in generation.json; older folders record only ``hist_cluster``, and the checkpoint's centre of that cluster stands
in for it). Distances are 1-D Wasserstein in the generator's [-1, 1] intensity units (``histogram_wasserstein``).
Two references from the real scars the model trained on: each real slice's distance to its nearest centre (what
the conditions can express at best) and to a random centre (a condition ignored). Also the painted scar's mean
intensity minus the condition's mean: positive means brighter than asked. And whether the condition steers at all:
the correlation over painted slices of the condition's mean with the painted mean (1 = follows it, 0 = ignores
it), beside the correlation of the scar's size with the painted mean.

Usage: python benchmarks/histogram_obedience.py --synthetic STUDY/synthetic/smile [--synthetic ...] \\
       [--out outputs/benchmarks/histogram_obedience.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from claim.data.io import write_json  # noqa: E402
from claim.data.layouts import read_dataset  # noqa: E402
from claim.generator.checkpoint import read_generator_checkpoint  # noqa: E402
from claim.generator.data import patient_norm  # noqa: E402
from claim.generator.histogram import histogram_wasserstein, scar_histogram  # noqa: E402
from claim.labels import Label  # noqa: E402
from claim.stages.evaluate import source_canvas  # noqa: E402


def _mean(hist: np.ndarray) -> float:
    mids = -1.0 + (np.arange(hist.size) + 0.5) * 2.0 / hist.size
    return float((hist * mids).sum() / hist.sum())


def _correlation(a: list[float], b: list[float]) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def obedience(folder: Path, data: Path | None = None) -> dict:
    records = json.loads((folder / "generation.json").read_text())
    model = Path(records[0]["model"])
    payload = read_generator_checkpoint(model)
    centres = np.asarray(payload["hist_centres"], dtype=np.float64)
    bins = centres.shape[1]
    # The canvases' folder: given, or (PNG slice layout) the one holding the first source image's images/ folder.
    fit_dir = Path(data) if data is not None else Path(records[0]["source_image"]).parents[1]
    canvases = {p.patient_id: p for p in read_dataset(fit_dir, progress=False)}
    asked = {r["mask_id"]: np.asarray(r.get("hist_condition") or centres[r["hist_cluster"]], dtype=np.float64)
             for r in records}
    distances, shifts, asked_means, painted_means, sizes = [], [], [], [], []
    for patient in read_dataset(folder, progress=False):
        source = source_canvas(patient.patient_id, canvases)
        if source is None or patient.patient_id not in asked:
            continue
        norm = patient_norm(canvases[source])
        for k in range(patient.n_slices):
            scar = patient.label_maps[k] == Label.INFARCT
            if scar.sum() < 10:
                continue
            painted = scar_histogram(norm.normalise(patient.images[k]), scar, bins)
            distances.append(histogram_wasserstein(painted, asked[patient.patient_id]))
            shifts.append(_mean(painted) - _mean(asked[patient.patient_id]))
            asked_means.append(_mean(asked[patient.patient_id]))
            painted_means.append(_mean(painted))
            sizes.append(int(scar.sum()))
    rng = np.random.default_rng(0)
    nearest, ignored = [], []
    for patient in canvases.values():
        if not patient.has_infarct:
            continue
        norm = patient_norm(patient)
        for k in range(patient.n_slices):
            scar = patient.label_maps[k] == Label.INFARCT
            if scar.sum() < 10:
                continue
            real = scar_histogram(norm.normalise(patient.images[k]), scar, bins)
            to_centres = [histogram_wasserstein(real, c) for c in centres]
            nearest.append(min(to_centres))
            ignored.append(to_centres[int(rng.integers(len(centres)))])
    return {
        "folder": str(folder), "model": str(model), "slices": len(distances),
        "painted_vs_asked_median": float(np.median(distances)) if distances else float("nan"),
        "painted_minus_asked_mean_intensity_median": float(np.median(shifts)) if shifts else float("nan"),
        "real_vs_nearest_centre_median": float(np.median(nearest)) if nearest else float("nan"),
        "real_vs_random_centre_median": float(np.median(ignored)) if ignored else float("nan"),
        "real_slices": len(nearest),
        "asked_vs_painted_mean_correlation": _correlation(asked_means, painted_means),
        "scar_pixels_vs_painted_mean_correlation": _correlation(sizes, painted_means),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, default=None,
                        help="the canvases' data folder (default: found from generation.json, PNG layout)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "histogram_obedience.json")
    args = parser.parse_args(argv)
    rows = [obedience(folder, args.data) for folder in args.synthetic]
    for row in rows:
        print(f"{row['folder']}: painted vs asked W1 {row['painted_vs_asked_median']:.3f} (median of "
              f"{row['slices']} slices; painted - asked mean {row['painted_minus_asked_mean_intensity_median']:+.3f}); "
              f"real vs nearest centre {row['real_vs_nearest_centre_median']:.3f}, vs a random centre "
              f"{row['real_vs_random_centre_median']:.3f} ({row['real_slices']} real slices); correlation of the "
              f"painted mean with the asked mean {row['asked_vs_painted_mean_correlation']:+.2f}, with the scar's "
              f"size {row['scar_pixels_vs_painted_mean_correlation']:+.2f}")
    write_json(args.out, {"sets": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
