"""Joint-training designs compared on one finished study folder (a single split, or one fold of a CV study).

Each design re-runs only what the ``claim`` arm depends on, with the study's own models and data: the joint run
(from the study's ``generator_claim`` checkpoint, on its fit patients and SMILE prior), the synthetic set on the
study's SMILE masks, one segmenter on real + synthetic, the test patients, and the realism of the painted scar
against the study's held-out real scars. Every design shares the study's seed, so the designs differ only in the
joint-loss settings given. The study's own arms (``real_only``, ``smile``, ``claim``) are scored beside them.

Per design: infarct / myocardium Dice over the study's pathological test patients, the paired bootstrap of the
design minus ``real_only`` and minus ``smile`` (patients resampled), image C2ST AUC and the intensity W1 of the
painted scar, the median painted contrast, and the joint run's last losses. Resumable per design and step.
This is a screen for the cross-validated study, not a substitute: one split decides little.

    python benchmarks/joint_designs.py --study outputs/cv/folds/fold1/study --out outputs/benchmarks/joint_designs \\
        --design guard:lambda_histogram=1 --design bound:lambda_histogram=1,consistency_bound=real

``generator_steps=N`` first trains the design's own claim generator for N steps (the study's recipe otherwise) and
starts the joint run from it; ``generator.KEY=VALUE`` trains it with other ``GeneratorConfig`` fields (e.g.
``generator.mvo_channel=true``). With ``source=smile`` that own generator paints instead of the smile arm's, with
no joint run (on the study's SMILE masks, or on the ``synthetic_patients`` set below). More keys are not
joint-loss settings: ``source=smile`` (or ``claim``) reuses that
arm's synthetic set instead of a new joint run, ``source=real`` trains on the real slices only (a retrain of the
``real_only`` arm), ``segmenter_seed=N`` trains the design's segmenter with seed N instead of the study's (the
joint run keeps the study's seed: with ``source`` this measures how much the segmenter's own seed moves an arm),
``segmenter.KEY=VALUE`` changes the design's segmenter recipe (``SegmenterConfig`` fields, e.g.
``segmenter.lr_warmup=50``; the joint run keeps the study's, single-slice: ``ExperimentConfig.joint_segmenter``),
``synthetic_patients=N`` (with ``source=smile`` or ``claim``) paints N synthetic patients with that arm's
generator on a new SMILE mask set drawn as the study draws its own (round-robin over the canvases, the same prior
and seeds, so the study's masks are its first ones) instead of reusing the arm's set: how much synthetic data the
arm gets, everything else equal; and ``qc_min_dice=D[,qc_max_contrast_pct=P]`` keeps only the synthetic scar
slices that the study's real-only segmenter finds with Dice >= D and whose scar is no brighter than the P-th
percentile of the training donors' real scar (``claim.stages.quality``); its judge fidelity is then selected, not
measured.

``--pool STUDY=OUT ...`` pools one design over the folds it ran on (``--design NAME``): per-patient Dice of every
fold's test patients, each arm minus the design with the fold-stratified paired bootstrap of the study's own
cross-validation (patients resampled within folds). With several ``--design``s it also writes
``pooled_differences.json``: every pair among the study's arms and the designs, and, for each study arm that
designs retrained (``source``) with other ``segmenter_seed``s, that arm averaged over all its seeds (per-patient
Dice averaged; the key ``two_seed_pairs`` holds these whatever the number of seeds), compared with the other such
arms: a difference between arms that survives a change of the segmenter's seed; and ``recipe_seed_pairs``, the same
for arms retrained with another segmenter recipe (``segmenter.KEY=VALUE``), each averaged over the distinct seeds
it was trained with under that recipe and compared with the other arms of that recipe. Seed probes, real-only
retrains and recipe changes are neither candidates of the nested choice nor rows of the gallery.

``hist_rule=R`` (``claim generate --hist-cluster``: matched, mapped, random) draws the histogram conditions by rule
R: in a joint run for its consistency batch, replay buffer and painting; with ``source=smile`` or ``claim``, that
arm's generator repaints the study's masks (or the ``synthetic_patients`` set) by rule R.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from joint_designs_pool import (  # noqa: E402  (a sibling script: benchmarks/ is on the path)
    RESULT,
    SOURCE_ARM,
    nested_choice,
    pool,
    pooled_differences,
    seed_probe,
)

from claim.aha.config import geometry_for  # noqa: E402
from claim.aha.geometry import PatientGeometry  # noqa: E402
from claim.data.io import write_json  # noqa: E402
from claim.data.layouts import read_dataset  # noqa: E402
from claim.data.patient import Patient  # noqa: E402
from claim.experiment.config import ExperimentConfig  # noqa: E402
from claim.experiment.selection import choose_on_validation, validation_of  # noqa: E402
from claim.experiment.stats import paired_bootstrap_ci  # noqa: E402
from claim.generator.config import Mode  # noqa: E402
from claim.generator.train import train_generator  # noqa: E402
from claim.joint import train_joint  # noqa: E402
from claim.joint.config import JointConfig  # noqa: E402
from claim.segmentation.train import train_segmenter  # noqa: E402
from claim.smile.prior import load_prior  # noqa: E402
from claim.stages.evaluate import PER_PATIENT_FILE, evaluate_study, source_canvas  # noqa: E402
from claim.stages.generate import generate_scars  # noqa: E402
from claim.stages.quality import QUALITY_FILE, filter_synthetic, real_contrast_limit  # noqa: E402
from claim.stages.realism import real_set, realism_of_source  # noqa: E402

QC_KEYS = {"qc_min_dice", "qc_max_contrast_pct"}
SOURCES = tuple(SOURCE_ARM)  # ``source=``: the study arm a design retrains without a new joint run


def _value(text: str):
    words = {"true": True, "false": False, "none": None}
    if text.lower() in words:
        return words[text.lower()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_design(text: str) -> tuple[str, dict]:
    """``name:key=value,key=value`` -> (name, JointConfig overrides); ``name:`` alone is the study's own."""
    name, _, body = text.partition(":")
    # An empty name would write the design's run into --out itself (e.g. an unset shell variable as --design).
    if not name.strip() or "/" in name:
        raise SystemExit(f"--design {text!r}: expected NAME[:KEY=VALUE,...] with a non-empty NAME without '/'")
    items = [item for item in body.split(",") if item]
    if any("=" not in item for item in items):
        raise SystemExit(f"--design {text!r}: settings must be KEY=VALUE, separated by commas")
    overrides = dict(item.split("=", 1) for item in items)
    return name, {key: _value(value) for key, value in overrides.items()}


def _scores(per_patient: dict, arm: str, metric: str, ids: list[str]) -> np.ndarray:
    return np.array([per_patient["arms"][arm][pid][metric] for pid in ids])


def _difference(a: np.ndarray, b: np.ndarray, seed: int) -> dict:
    ci = paired_bootstrap_ci(a, b, seed=seed)
    return {"mean": ci["mean"], "ci95": [ci["low"], ci["high"]]}


def run_design(study: Path, out: Path, name: str, overrides: dict, threads: int) -> dict:
    done = out / name / RESULT
    if done.exists():
        result = json.loads(done.read_text())
        if "validation" not in result:  # written before validation was recorded
            test_ids = json.loads((study / "prepare.json").read_text())["test"]
            result["validation"] = validation_of(out / name / "segmenter" / "segmenter.pt", test_ids)["validation"]
        return result
    torch.set_num_threads(threads)
    config = ExperimentConfig.from_dict(json.loads((study / "config.json").read_text())["config"])
    state = json.loads((study / "state.json").read_text())
    seed = int(state["identity"]["seed"])
    roles = json.loads((study / "prepare.json").read_text())
    train_dir, test_dir = Path(roles["train_dir"]), Path(roles["test_dir"])
    overrides = dict(overrides)
    source = overrides.pop("source", None)  # an arm of the study whose synthetic set is reused (no joint run)
    segmenter_seed = overrides.pop("segmenter_seed", None)
    if segmenter_seed is not None and (not isinstance(segmenter_seed, int) or segmenter_seed < 0):
        raise SystemExit(f"design {name}: segmenter_seed={segmenter_seed} must be a non-negative integer")
    recipe = {key.split(".", 1)[1]: overrides.pop(key) for key in [k for k in overrides if k.startswith("segmenter.")]}
    try:
        segmenter_config = config.segmenter().replace(**recipe)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"design {name}: segmenter settings {recipe}: {exc}") from exc
    if source is not None and str(source) not in SOURCES:
        raise SystemExit(f"design {name}: source={source}; choose one of {', '.join(SOURCES)}")
    qc = {key: overrides.pop(key) for key in [k for k in overrides if k.startswith("qc_")]}
    if qc and source == "real":
        raise SystemExit(f"design {name}: source=real has no synthetic set to quality-control")
    generator_steps = overrides.pop("generator_steps", None)  # a claim generator trained longer than the study's
    own_generator = {key.split(".", 1)[1]: overrides.pop(key)  # the design's own claim generator (changed fields)
                     for key in [k for k in overrides if k.startswith("generator.")]}
    if generator_steps is not None:
        own_generator.setdefault("steps", int(generator_steps))
    try:
        generator_config = config.generator(Mode.CLAIM).replace(**own_generator)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"design {name}: generator settings {own_generator}: {exc}") from exc
    synthetic_patients = overrides.pop("synthetic_patients", None)  # a larger mask set painted by the source arm
    if synthetic_patients is not None and (source not in ("smile", "claim") or isinstance(synthetic_patients, bool)
                                           or not isinstance(synthetic_patients, int) or synthetic_patients < 1):
        raise SystemExit(f"design {name}: synthetic_patients={synthetic_patients} needs source=smile or "
                         "source=claim and a positive integer")
    unknown = sorted(set(qc) - QC_KEYS)
    if unknown:
        raise SystemExit(f"design {name}: unknown quality-control keys {unknown} (known: {sorted(QC_KEYS)})")
    if own_generator and source not in (None, "smile"):
        raise SystemExit(f"design {name}: source={source} paints with no claim generator of its own; generator "
                         "settings need no source (a joint run from it) or source=smile (it paints alone)")
    hist_rule = overrides.pop("hist_rule") if source is not None and "hist_rule" in overrides else None
    if hist_rule is not None and source not in ("smile", "claim"):
        raise SystemExit(f"design {name}: hist_rule with source={source}: no generator to repaint with")
    if source is not None and overrides:
        raise SystemExit(f"design {name}: source={source} reuses that arm's synthetic set, so joint-loss settings "
                         f"{sorted(overrides)} would have no effect")
    joint = JointConfig.from_dict({**config.joint().to_dict(), **overrides})
    prior_file = study / "masks" / "smile" / "smile_prior.json"  # the donors' prior the study's masks came from
    prior = load_prior(prior_file) if prior_file.exists() else None
    folder = out / name
    start = time.perf_counter()
    joint_dir = folder / "joint"
    if source == "real":
        synthetic = None
    elif source is not None and (synthetic_patients is not None or own_generator or hist_rule is not None):
        model = (_own_generator(study, folder, generator_config, seed, config.precision) if own_generator
                 else study / "runs" / ("generator_claim" if source == "smile" else "joint") / "generator.pt")
        synthetic = more_synthetic(study, folder, config, seed, model, synthetic_patients,
                                   hist_rule or config.hist_rule)
    elif source is not None:
        synthetic = study / "synthetic" / str(source)
    else:
        # Always resume a folder this script started: both trainers continue from their last state (or step 0)
        # and return at once when finished; a checkpoint written mid-run is not a finished run.
        init_generator = (_own_generator(study, folder, generator_config, seed, config.precision) if own_generator
                          else study / "runs" / "generator_claim" / "generator.pt")
        train_joint(train_dir, joint_dir, joint=joint, segmenter=config.joint_segmenter(),
                    init_generator=init_generator, seed=seed,
                    train_patients=roles["fit"], progress=True, smile_prior=prior, precision=config.precision,
                    resume=joint_dir.exists())
        synthetic = folder / "synthetic"
        if not (synthetic / "generation.json").exists():  # written last, atomically: its presence means complete
            generate_scars(joint_dir / "generator.pt", study / "data" / "fit", study / "masks" / "smile", synthetic,
                           sampler=config.claim_sampler, seed=seed, previews=False, precision=config.precision,
                           overwrite=True, hist_cluster=joint.hist_rule)
    quality = None
    if qc:
        # The judge is the study's real-only segmenter (training patients only); the contrast limit comes from
        # the training donors' real scars.
        filtered = folder / "synthetic_qc"
        if not (filtered / QUALITY_FILE).exists():
            if filtered.exists():
                shutil.rmtree(filtered)
            pct = qc.get("qc_max_contrast_pct")
            train_patients = {p.patient_id: p for p in read_dataset(train_dir, progress=False)}
            donors = [train_patients[pid] for pid in roles["donors"]]
            limit = None if pct is None else real_contrast_limit(donors, float(pct))
            filter_synthetic(synthetic, {pid: train_patients[pid] for pid in roles["canvases"]},
                             study / "runs" / "real_only" / "segmenter.pt", filtered,
                             min_judge_dice=float(qc.get("qc_min_dice", 0.0)), max_contrast=limit,
                             precision=config.precision)
        quality = json.loads((filtered / QUALITY_FILE).read_text())
        synthetic = filtered
    segmenter = folder / "segmenter"
    train_segmenter([train_dir], segmenter, segmenter_config,
                    synthetic_dirs=() if synthetic is None else (synthetic,),
                    seed=seed if segmenter_seed is None else int(segmenter_seed), val_patients=roles["val"],
                    progress=True, precision=config.precision, resume=segmenter.exists())
    train = {p.patient_id: p for p in read_dataset(train_dir)}
    geometries: dict[str, PatientGeometry] = {}

    def geometry(patient: Patient) -> PatientGeometry:
        if patient.patient_id not in geometries:
            geometries[patient.patient_id] = geometry_for(patient, config.aha())
        return geometries[patient.patient_id]

    canvases = {pid: train[pid] for pid in roles["canvases"]}
    evaluate_study(test_dir, folder / "evaluation", segmenters={"real_only": study / "runs" / "real_only" /
                                                                "segmenter.pt", name: segmenter / "segmenter.pt"},
                   judge_arm="real_only", synthetic={} if synthetic is None else {name: synthetic},
                   canvases=canvases,
                   donors=[train[pid] for pid in roles["donors"]], geometry=geometry, precision=config.precision)
    ours = json.loads((folder / "evaluation" / PER_PATIENT_FILE).read_text())
    theirs = json.loads((study / "evaluation" / PER_PATIENT_FILE).read_text())
    ids = sorted(pid for pid, r in theirs["arms"]["real_only"].items() if r["pathological"])
    # Over the pathological patients for every metric, as the study's tables.
    design = {m: _scores(ours, name, m, ids) for m in ("infarct_dice", "myocardium_dice")}
    result: dict = {"design": name, "overrides": overrides, "source": source, "qc": qc,
                    "synthetic_patients": synthetic_patients,
                    "hist_rule": hist_rule or (joint.hist_rule if source is None else config.hist_rule),
                    "generator_steps": generator_steps, "generator_changes": own_generator,
                    "segmenter_seed": segmenter_seed, "segmenter_recipe": recipe,
                    "joint": asdict(joint) if source is None else None, "seed": seed,
                    # What a choice between designs may read: the segmenter's validation record (raises when a
                    # validation patient is a test patient).
                    "validation": validation_of(segmenter / "segmenter.pt", roles["test"])["validation"],
                    "test_pathological": len(ids), "minutes": round((time.perf_counter() - start) / 60, 1)}
    for metric, values in design.items():
        result[metric] = float(values.mean())
        for arm in ("real_only", "smile", "claim"):
            result[f"{metric}_minus_{arm}"] = _difference(values, _scores(theirs, arm, metric, ids), seed)
    if synthetic is None:  # a real-only retrain: nothing painted to judge
        result |= {"fidelity": None, "image_auc": None, "image_auc_ci95": None, "intensity": None,
                   "joint_last25": {}}
        write_json(done, result)
        return result
    result["fidelity"] = float(np.mean(list(ours["fidelity"][name].values())))

    test = read_dataset(test_dir)
    reference = real_set(test, config.aha())
    painted = read_dataset(synthetic)

    def geometry_of(patient: Patient) -> PatientGeometry:
        source = source_canvas(patient.patient_id, canvases)
        return geometry(canvases[source] if source is not None else patient)

    realism = realism_of_source(reference, painted, aha=config.aha(), c2st=config.c2st(), seed=seed, masks=False,
                                name=name, geometry_of=geometry_of)
    result["image_auc"] = realism["image_c2st"]["auc"]
    result["image_auc_ci95"] = [realism["image_c2st"]["low"], realism["image_c2st"]["high"]]
    result["intensity"] = realism["intensity"]
    if quality is not None:
        result["quality"] = {k: v for k, v in quality.items() if k != "slices"}
    log_file = joint_dir / "train_log.jsonl"
    log = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()] if log_file.exists() else []
    last = [e for e in log if e.get("phase") == "joint"][-25:]
    result["joint_last25"] = {k: float(np.mean([e[k] for e in last if k in e]))
                              for k in ("diffusion_loss", "consistency_loss", "histogram_loss",
                                        "real_consistency_loss", "segmenter_loss") if any(k in e for e in last)}
    write_json(done, result)
    return result


def _own_generator(study: Path, folder: Path, generator_config, seed: int, precision: str) -> Path:
    """The design's own claim-mode generator, trained on the study's fit patients with the study's seed (once)."""
    path = folder / "generator" / "generator.pt"
    if not path.exists():
        train_generator(study / "data" / "fit", folder / "generator", generator_config, seed=seed, precision=precision,
                        progress=True, checkpoint_every=10**9, overwrite=(folder / "generator").exists())
    return path


def more_synthetic(study: Path, folder: Path, config: ExperimentConfig, seed: int, model: Path,
                   n: int | None, hist_rule: str) -> Path:
    """Synthetic patients painted by the generator ``model`` on the study's SMILE masks (``n`` None) or on ``n``
    masks drawn by the study's own mask stage with its saved prior, more patients per canvas where ``n`` exceeds
    the canvases (the study's masks are the first ones). Resumable: each part is skipped once complete."""
    from claim.experiment.study import _Study  # the study's own mask stage, so the masks are drawn as the arm's
    from claim.stages.masks import MASKS_FILE

    synthetic = folder / "synthetic"
    if (synthetic / "generation.json").exists():  # written last, atomically: its presence means complete
        return synthetic
    roles = json.loads((study / "prepare.json").read_text())
    masks = study / "masks" / "smile"
    if n is not None:
        masks = folder / "masks" / "smile"
        if not (masks / MASKS_FILE).exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(study / "prepare.json", folder / "prepare.json")
            per_canvas = -(-n // len(roles["canvases"]))
            drawer = _Study(Path(roles["train_dir"]), Path(roles["test_dir"]), folder,
                            config.replace(masks_per_canvas=per_canvas, max_synthetic_patients=n), seed, "cpu", False,
                            prior=load_prior(study / "masks" / "smile" / "smile_prior.json"))
            drawer.masks_smile()
    generate_scars(model, study / "data" / "fit", masks, synthetic, sampler=config.claim_sampler, seed=seed,
                   previews=False, precision=config.precision, overwrite=True, hist_cluster=hist_rule)
    return synthetic


def design_gallery(study: Path, out: Path, names: list[str], seed: int = 1) -> bytes:
    """Scar crops of the study's held-out real scars, its ``smile`` and ``claim`` arms and each design, at the same
    pixel scale and grey window (the study's realism gallery, one row per set)."""
    from claim.evaluation.realism import scar_samples
    from claim.report.realism import realism_gallery_png
    from claim.stages.realism import gallery_examples

    roles = json.loads((study / "prepare.json").read_text())
    config = ExperimentConfig.from_dict(json.loads((study / "config.json").read_text())["config"])
    train = {p.patient_id: p for p in read_dataset(Path(roles["train_dir"]), progress=False)}
    real = [s for p in read_dataset(Path(roles["test_dir"]), progress=False) if p.has_infarct
            for s in scar_samples(p.images, p.label_maps, geometry_for(p, config.aha()), p.patient_id)]
    rows = {"real": gallery_examples(real, seed=seed)}
    folders = {"smile": study / "synthetic" / "smile", "claim": study / "synthetic" / "claim"}
    for name in names:  # a design's own synthetic set (after its quality control, if any), or the arm it reused
        source = json.loads((out / name / RESULT).read_text()).get("source")
        if source == "real":
            continue  # nothing painted
        own = [out / name / "synthetic_qc", out / name / "synthetic"]
        own += [study / "synthetic" / source] if source else []
        folders[name] = next(f for f in own if f.is_dir())
    for name, folder in folders.items():
        samples = []
        for patient in read_dataset(folder, progress=False):
            canvas = train[source_canvas(patient.patient_id, train) or patient.patient_id]
            samples += scar_samples(patient.images, patient.label_maps, geometry_for(canvas, config.aha()),
                                    canvas.patient_id)
        rows[name] = gallery_examples(samples, seed=seed)
    return realism_gallery_png(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", nargs="+", metavar="STUDY=OUT", default=None,
                        help="pool --design NAME over the folds given (instead of running designs)")
    parser.add_argument("--study", type=Path, default=None, help="a finished single-split study folder")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "joint_designs")
    parser.add_argument("--design", action="append", required=True, metavar="NAME:KEY=VALUE,...",
                        help="a design: JointConfig overrides of the study's joint config (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gallery", type=Path, default=None, metavar="PNG",
                        help="with --pool: also write a gallery of the first fold's real scars, arms and the design")
    args = parser.parse_args(argv)
    if args.pool:
        names = [parse_design(text)[0] for text in args.design]
        for name in names:
            result = pool(args.pool, name)
            per_fold = result["validation_infarct_dice"]
            print("validation infarct Dice per fold: " + ", ".join(
                f"{arm} " + "/".join(f"{v:.3f}" for v in values) for arm, values in per_fold.items()))
            for metric in ("infarct_dice", "myocardium_dice"):
                entry = result[metric]
                print(f"{metric} (n {entry['n']}): " + ", ".join(f"{a} {m:.3f}" for a, m in entry["means"].items()))
                for arm in ("real_only", "smile", "claim"):
                    d = entry[f"minus_{arm}"]
                    print(f"  {name} - {arm}: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
            write_json(args.out / f"pooled_{name}.json", result)
        # Seed probes and real-only retrains are not candidates for the claim arm, and paint nothing of their own.
        study, out = (Path(part) for part in args.pool[0].split("=", 1))
        candidates = [name for name in names if not seed_probe(json.loads((out / name / RESULT).read_text()))]
        if candidates:
            nested = nested_choice(args.pool, candidates)
            print(f"chosen inside each fold on its validation patients: {nested['chosen_per_fold']}; infarct Dice "
                  f"{nested['infarct_dice']['chosen']:.3f}" + "".join(
                      f"; - {arm} {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
                      for arm in ("real_only", "smile", "claim") if (d := nested[f"chosen_minus_{arm}"])))
            write_json(args.out / "pooled_nested_choice.json", nested)
        if len(names) > 1:
            differences = pooled_differences(args.pool, names)
            for group in ("pairs", "two_seed_pairs", "recipe_seed_pairs"):
                for d in differences[group]:
                    print(f"{group}: {d['a']} - {d['b']}: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
            write_json(args.out / "pooled_differences.json", differences)
        if args.gallery is not None:
            args.gallery.parent.mkdir(parents=True, exist_ok=True)
            args.gallery.write_bytes(design_gallery(study, out, candidates))
        return 0
    if args.study is None:
        parser.error("--study is required (or --pool)")
    rows = [run_design(args.study, args.out, *parse_design(text), args.threads) for text in args.design]
    test_ids = json.loads((args.study / "prepare.json").read_text())["test"]
    # The choice is between the claim arm as run (the status quo) and the designs; the smile arm is shown beside.
    candidates = {row["design"]: row for row in rows if not seed_probe(row)}
    candidates["claim arm"] = {"validation": validation_of(args.study / "runs" / "claim" / "segmenter.pt",
                                                           test_ids)["validation"]}
    chosen = choose_on_validation(candidates)
    smile = validation_of(args.study / "runs" / "smile" / "segmenter.pt", test_ids)["validation"]
    for row in rows:
        inf = row["infarct_dice_minus_real_only"]
        vs_smile = row["infarct_dice_minus_smile"]
        print(f"{row['design']:10s} infarct {row['infarct_dice']:.3f}  - real_only {inf['mean']:+.3f} "
              f"[{inf['ci95'][0]:+.3f}, {inf['ci95'][1]:+.3f}]  - smile {vs_smile['mean']:+.3f} "
              f"[{vs_smile['ci95'][0]:+.3f}, {vs_smile['ci95'][1]:+.3f}]  myo {row['myocardium_dice']:.3f}  "
              + (f"image AUC {row['image_auc']:.3f}  fidelity {row['fidelity']:.3f}  joint {row['joint_last25']}"
                 if row["fidelity"] is not None else "(real slices only)"))
    for name, record in candidates.items():
        print(f"{name:10s} validation infarct {record['validation'].get('infarct_dice', float('nan')):.3f}")
    print(f"smile arm  validation infarct {smile.get('infarct_dice', float('nan')):.3f} (not a candidate)")
    print(f"chosen on validation patients: {chosen}")
    write_json(args.out / "summary.json", {"study": str(args.study), "designs": rows, "chosen": chosen,
                                           "validation": {k: v["validation"] for k, v in candidates.items()},
                                           "smile_arm_validation": smile})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
