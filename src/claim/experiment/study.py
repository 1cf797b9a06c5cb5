"""``claim experiment``: the four-arm study, resumable at stage granularity.

Layout of ``OUT``::

    state.json              finished stages (seconds, RSS) + the run's identity (config, seed, folders)
    prepare.json            patient roles: fit / val (from the training data only), canvases, donors, test ids
    data/fit/               the training patients minus the validation ones (what generators train on)
    masks/smile|transplant/ conditioning masks on the normal training patients (masks.json + label maps)
    runs/generator_lefusion|generator_claim|joint|<arm>/   checkpoints and train_log.jsonl
    synthetic/<arm>/        synthetic patients (``claim generate`` output) per synthetic arm
    evaluation/             per-arm predictions summary, gallery crops, bull's-eye counts
    orientation/            orientation.png + orientation.json: the AHA angle origin of every training and test patient
    metrics.json, report.html

The test folder is read only by the ``evaluate`` stage and, after it, by ``orientation`` (to show where each test
patient's origin lies); validation patients come from the training folder.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from claim import __version__
from claim.aha.config import geometry_for
from claim.aha.geometry import PatientGeometry
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.data.patient import Patient
from claim.data.write import copy_patient
from claim.errors import ClaimError
from claim.experiment.config import ARMS, SYNTHETIC_ARMS, ExperimentConfig, segmenter_run_names
from claim.experiment.realism import REALISM_FILE, realism_fold, study_realism
from claim.experiment.records import (
    DONOR_PRIOR_SOURCE,
    ORIENTATION_DIR,
    ORIENTATION_SHEET,
    ORIENTATION_SUMMARY,
    TreeMemory,
    identity_config,
    json_safe,
    open_study_folder,
    orientation_identity,
    patient_ids,
    peak_rss_mb,
    realism_is_current,
    write_orientation_overview,
)
from claim.experiment.schedule import Stage, check_workers, run_stages, warn_on_changed_parallelism, worker_threads
from claim.experiment.stats import ARM_METRICS
from claim.experiment.summary import study_metrics
from claim.experiment.transplant import transplant_scar
from claim.generator.config import Mode
from claim.output import data_identity, fingerprint, write_manifest
from claim.runtime import torch_threads
from claim.smile.prior import Prior
from claim.stages.evaluate import GALLERY_FILE, PER_PATIENT_FILE, evaluate_study
from claim.stages.masks import MASKS_FILE, write_mask

__all__ = ["STATE_FILE", "METRICS_FILE", "REPORT_FILE", "ARM_METRICS", "run_experiment", "peak_rss_mb"]

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"


class _Study:
    def __init__(self, train_dir: Path, test_dir: Path, out_dir: Path, config: ExperimentConfig, seed: int,
                 device: str, progress: bool, overwrite: bool = False, realism: bool = True, workers: int = 1,
                 worker_threads: int | None = None, prior: Prior | None = None) -> None:
        self.workers, self.worker_threads = workers, worker_threads
        self.train_dir, self.test_dir, self.out = Path(train_dir), Path(test_dir), Path(out_dir)
        self.overwrite, self.with_realism = overwrite, realism
        # What a worker process needs to rebuild this study and run one of its stages (no progress bars there:
        # two processes' bars would garble each other).
        self.spec = (self.train_dir, self.test_dir, self.out, config, seed, device, False, overwrite, realism)
        self.config, self.seed, self.device, self.progress = config, seed, device, progress
        self.fit_dir = self.out / "data" / "fit"
        self._train: list[Patient] | None = None
        self._geometries: dict[str, PatientGeometry] = {}
        self._prior: Prior | None = prior  # None: fitted on the training donors when first needed

    # ------------------------------------------------------------------ helpers
    def train_patients(self) -> list[Patient]:
        if self._train is None:
            self._train = read_dataset(self.train_dir, progress=self.progress)
        return self._train

    def patient(self, patient_id: str) -> Patient:
        return next(p for p in self.train_patients() if p.patient_id == patient_id)

    def geometry(self, patient: Patient) -> PatientGeometry:
        if patient.patient_id not in self._geometries:
            self._geometries[patient.patient_id] = geometry_for(patient, self.config.aha())
        return self._geometries[patient.patient_id]

    def roles(self) -> dict:
        return json.loads((self.out / "prepare.json").read_text())

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name

    # ------------------------------------------------------------------ stages
    def prepare(self) -> None:
        patients = self.train_patients()
        test_ids = patient_ids(self.test_dir)
        overlap = sorted({p.patient_id for p in patients} & set(test_ids))
        if overlap:
            raise ClaimError(f"patients {overlap[:5]} are in both --train-data and --test-data")
        pathological = sorted(p.patient_id for p in patients if p.has_infarct)
        normal = sorted(p.patient_id for p in patients if not p.has_infarct)
        if len(pathological) < 2 or not normal:
            raise ClaimError(f"{self.train_dir}: the study needs >= 2 pathological and >= 1 normal training patients "
                             f"(found {len(pathological)} and {len(normal)})")
        rng = np.random.default_rng([self.seed, 7])
        n_val = min(max(1, round(self.config.val_fraction * len(pathological))), len(pathological) - 1)
        val = [pathological[i] for i in sorted(rng.permutation(len(pathological))[:n_val])]
        n_val_normal = min(round(self.config.val_fraction * len(normal)), len(normal) - 1)
        val += [normal[i] for i in sorted(rng.permutation(len(normal))[:n_val_normal])]
        fit = sorted(set(pathological + normal) - set(val))
        self.fit_dir.mkdir(parents=True, exist_ok=True)
        for patient in patients:
            if patient.patient_id in fit:
                copy_patient(patient, self.train_dir, self.fit_dir)
        write_json(self.out / "prepare.json", {
            "train_dir": str(self.train_dir), "test_dir": str(self.test_dir),
            "fit": fit, "val": sorted(val),
            "canvases": [p for p in normal if p in fit], "donors": [p for p in pathological if p in fit],
            "test": test_ids,
        })

    def _mask_plan(self) -> list[tuple[int, int]]:
        """(canvas index, draw index) pairs, round-robin over canvases, capped."""
        n_canvas = len(self.roles()["canvases"])
        plan = [(i, k) for k in range(self.config.masks_per_canvas) for i in range(n_canvas)]
        cap = self.config.max_synthetic_patients
        return plan[:cap] if cap is not None else plan

    def smile_prior(self) -> Prior:
        """SMILE prior of the study's masks (the ``smile`` arm's and the joint run's), fitted on the training donors'
        scars only: the shipped prior was fitted on all EMIDEC pathological patients, which may include the test
        patients. With fewer than 3 donors (tiny phantom studies) no prior can be fitted and the shipped one is used.
        """
        from claim.smile.canvas import ScarCanvas
        from claim.smile.prior import default_prior, fit_prior
        from claim.smile.realism import label_map_statistics

        if self._prior is None:
            donors = [self.patient(pid) for pid in self.roles()["donors"]]
            if len(donors) >= 3:
                stats = [label_map_statistics(ScarCanvas.from_geometry(self.geometry(p)), p.label_maps) for p in donors]
                self._prior = fit_prior(stats, source=f"{self.train_dir} {DONOR_PRIOR_SOURCE}")
            else:
                log.warning("experiment: %d training donors are too few to fit a SMILE prior; using the shipped one",
                            len(donors))
                self._prior = default_prior()
        return self._prior

    def masks_smile(self) -> None:
        from claim.smile.prior import save_prior
        from claim.smile.sampler import SmileSampler

        roles, root = self.roles(), self.out / "masks" / "smile"
        prior = self.smile_prior()
        root.mkdir(parents=True, exist_ok=True)
        save_prior(prior, root / "smile_prior.json")
        entries, samplers = [], {}
        for i, k in self._mask_plan():
            canvas = self.patient(roles["canvases"][i])
            if i not in samplers:
                samplers[i] = SmileSampler(self.geometry(canvas), canvas.label_maps, prior=prior)
            result = samplers[i].sample_result(np.random.default_rng([self.seed, i, k]))
            label_maps = result.label_maps(canvas.label_maps)
            entries.append(write_mask(root, canvas, f"{canvas.patient_id}_smile{k + 1}", label_maps,
                                       {"pattern": result.spec.pattern.value, "segments": list(result.spec.segments)}))
        write_json(root / MASKS_FILE, entries)

    def masks_transplant(self) -> None:
        roles, root = self.roles(), self.out / "masks" / "transplant"
        donors = roles["donors"]
        entries = []
        for n, (i, k) in enumerate(self._mask_plan()):
            canvas = self.patient(roles["canvases"][i])
            donor = self.patient(donors[(n + self.seed) % len(donors)])
            label_maps = transplant_scar(donor, self.geometry(donor), canvas, self.geometry(canvas))
            entries.append(write_mask(root, canvas, f"{canvas.patient_id}_tx{k + 1}", label_maps,
                                       {"donor_id": donor.patient_id}))
        write_json(root / MASKS_FILE, entries)

    def train_generator(self, mode: Mode) -> None:
        from claim.generator.train import train_generator

        name = "generator_lefusion" if mode == Mode.LEFUSION else "generator_claim"
        train_generator(self.fit_dir, self.run_dir(name), self.config.generator(mode),
                        seed=self.seed, device=self.device, precision=self.config.precision,
                        progress=self.progress, checkpoint_every=10**9)

    def joint(self) -> None:
        from claim.joint import train_joint

        roles = self.roles()
        train_joint(self.train_dir, self.run_dir("joint"), joint=self.config.joint(),
                    segmenter=self.config.joint_segmenter(),
                    init_generator=self.run_dir("generator_claim") / "generator.pt", seed=self.seed,
                    device=self.device, train_patients=roles["fit"], progress=self.progress,
                    smile_prior=self.smile_prior(), precision=self.config.precision)

    def synthesize(self, arm: str) -> None:
        from claim.stages.generate import generate_scars

        model = {"lefusion": self.run_dir("generator_lefusion"), "smile": self.run_dir("generator_claim"),
                 "claim": self.run_dir("joint")}[arm] / "generator.pt"
        masks = self.out / "masks" / ("transplant" if arm == "lefusion" else "smile")
        sampler = self.config.lefusion_sampler if arm == "lefusion" else self.config.claim_sampler
        generate_scars(model, self.fit_dir, masks, self.out / "synthetic" / arm, sampler=sampler, seed=self.seed,
                       device=self.device, previews=False, precision=self.config.precision,
                       hist_cluster=self.config.hist_rule)

    def segmenter_runs(self, arm: str) -> list[tuple[str, int]]:
        """(run name, seed) of each of the arm's segmenters: ``<arm>`` with the study's seed, then
        ``<arm>_seed2``... with the seed + 1000, + 2000... (all on the same real and synthetic data)."""
        return [(name, self.seed + 1000 * j)
                for j, name in enumerate(segmenter_run_names(arm, self.config.segmenter_seeds))]

    def train_segmenter(self, arm: str, name: str, seed: int) -> None:
        from claim.segmentation.train import train_segmenter

        synthetic = () if arm == "real_only" else (self.out / "synthetic" / arm,)
        train_segmenter([self.train_dir], self.run_dir(name), self.config.segmenter(), synthetic_dirs=synthetic,
                        seed=seed, device=self.device, val_patients=self.roles()["val"],
                        progress=self.progress, precision=self.config.precision)

    def evaluate(self) -> None:
        roles = self.roles()
        evaluate_study(self.test_dir, self.out / "evaluation",
                       segmenters={arm: [self.run_dir(name) / "segmenter.pt" for name, _ in self.segmenter_runs(arm)]
                                   for arm in ARMS}, judge_arm="real_only",
                       synthetic={arm: self.out / "synthetic" / arm for arm in SYNTHETIC_ARMS},
                       canvases={pid: self.patient(pid) for pid in roles["canvases"]},
                       donors=[self.patient(pid) for pid in roles["donors"]], geometry=self.geometry,
                       device=self.device, progress=self.progress, precision=self.config.precision)

    def realism(self) -> None:
        """Realism of every synthetic arm against the held-out test scars (read after the evaluate stage)."""
        study_realism([realism_fold(self.out, self.test_dir, self.patient, self.geometry, self.seed)],
                      aha=self.config.aha(), c2st=self.config.c2st(), seed=self.seed, out_dir=self.out / "realism",
                      progress=self.progress)

    def orientation(self) -> None:
        write_orientation_overview(self.out, self.train_patients(), self.test_dir, self.geometry, self.config.aha(),
                                   progress=self.progress)

    # ------------------------------------------------------------------ orchestration
    def stages(self) -> list[Stage]:
        """Every stage with the stages it reads from, in the order they run one at a time. With workers, a free
        worker takes the first ready stage: the long chains (joint run -> claim arm, RePaint -> lefusion arm) start
        early, and the real_only segmenter, which needs only the data, fills the gaps."""
        out, runs = self.out, self.out / "runs"
        stages = [
            Stage("prepare", (out / "prepare.json",), (self.fit_dir,), self.prepare),
            Stage("masks_smile", (out / "masks/smile/masks.json",), (out / "masks/smile",), self.masks_smile,
                  ("prepare",)),
            Stage("masks_transplant", (out / "masks/transplant/masks.json",), (out / "masks/transplant",),
                  self.masks_transplant, ("prepare",)),
            Stage("generator_claim", (runs / "generator_claim/generator.pt",), (runs / "generator_claim",),
                  lambda: self.train_generator(Mode.CLAIM), ("prepare",)),
            Stage("generator_lefusion", (runs / "generator_lefusion/generator.pt",), (runs / "generator_lefusion",),
                  lambda: self.train_generator(Mode.LEFUSION), ("prepare",)),
            Stage("joint", (runs / "joint/generator.pt", runs / "joint/segmenter.pt"), (runs / "joint",),
                  self.joint, ("generator_claim", "masks_smile")),
        ]
        sources = {"lefusion": ("generator_lefusion", "masks_transplant"),
                   "smile": ("generator_claim", "masks_smile"), "claim": ("joint", "masks_smile")}
        synthetic = [Stage(f"synthetic_{arm}", (out / "synthetic" / arm / "generation.json",),
                           (out / "synthetic" / arm,), lambda arm=arm: self.synthesize(arm), sources[arm])
                     for arm in SYNTHETIC_ARMS]
        segmenters = {arm: [Stage(f"segmenter_{name}", (runs / name / "segmenter.pt",), (runs / name,),
                                  lambda arm=arm, name=name, seed=seed: self.train_segmenter(arm, name, seed),
                                  ("prepare",) if arm == "real_only" else (f"synthetic_{arm}",))
                            for name, seed in self.segmenter_runs(arm)] for arm in ARMS}
        # real_only's segmenters before the synthetic sets: they are ready as soon as the data is.
        stages += segmenters["real_only"] + synthetic + [s for arm in SYNTHETIC_ARMS for s in segmenters[arm]]
        trained = tuple(s.name for arm in ARMS for s in segmenters[arm])
        stages.append(Stage("evaluate", (out / "evaluation" / PER_PATIENT_FILE, out / "evaluation" / GALLERY_FILE),
                            (out / "evaluation",), self.evaluate, trained))
        if self.with_realism:
            stages.append(Stage("realism", (out / "realism" / REALISM_FILE,), (out / "realism",), self.realism,
                                ("evaluate",)))
        orientation = out / ORIENTATION_DIR
        stages.append(Stage("orientation", (orientation / ORIENTATION_SUMMARY, orientation / ORIENTATION_SHEET),
                            (orientation,), self.orientation, ("evaluate",)))
        return stages

    def identity(self) -> dict:
        # The data's content, not only its folder names: changed data is never silently reused.
        return {"config": identity_config(self.config.to_dict()), "seed": self.seed,
                "train_dir": str(self.train_dir.resolve()), "test_dir": str(self.test_dir.resolve()),
                "data": data_identity([self.train_dir, self.test_dir]),
                "orientation_file": orientation_identity(self.config.aha())}

    def run(self) -> dict:
        identity = self.identity()
        state = open_study_folder(self.out, [self.train_dir, self.test_dir], identity, self.overwrite)
        state = {"identity": identity, "claim_version": __version__, "stages": state.get("stages", {}),
                 **({"wall_s": state["wall_s"]} if "wall_s" in state else {})}
        self.out.mkdir(parents=True, exist_ok=True)
        write_manifest(self.out, "experiment", config=self.config.to_dict(),
                       inputs=fingerprint([self.train_dir, self.test_dir]), owns_folder=True)
        write_json(self.out / "config.json", {"command": "experiment", "config": self.config.to_dict(),
                                              "seed": self.seed, "train_data": str(self.train_dir),
                                              "test_data": str(self.test_dir), "device": self.device,
                                              "claim_version": __version__})
        stages = self.stages()
        if not realism_is_current(self.out / "realism" / REALISM_FILE, asdict(self.config.c2st())):
            state["stages"].pop("realism", None)  # measured with another protocol: measured again
        done = set()
        for stage in stages:
            if state["stages"].get(stage.name) and all(p.exists() for p in stage.outputs):
                log.info("experiment: %s already complete, skipped", stage.name)
                done.add(stage.name)
        # A study begun before wall time was recorded ran its stages one at a time: their sum is its wall time.
        wall_before = state.get("wall_s", sum(r["seconds"] for r in state["stages"].values()))
        start = time.perf_counter()
        threads = torch.get_num_threads() if self.workers <= 1 else worker_threads(self.worker_threads, self.workers)
        warn_on_changed_parallelism(state["stages"], done, self.workers, threads)

        def finished(name: str, seconds: float) -> None:
            state["stages"][name] = {"seconds": round(seconds, 3), "threads": threads, "workers": self.workers,
                                     "peak_rss_mb": round(max(peak_rss_mb(), memory.peak_mb), 1)}
            state["wall_s"] = round(wall_before + time.perf_counter() - start, 3)
            write_json(self.out / STATE_FILE, state)

        with TreeMemory() as memory:
            run_stages(stages, done, finished, workers=self.workers, threads=self.worker_threads,
                       run_in_worker=functools.partial(_stage_in_worker, self.spec))
        metrics = json_safe(study_metrics(self.out, self.config, self.seed, self.roles(), state))
        write_json(self.out / METRICS_FILE, metrics)
        from claim.report.study import write_study_report

        write_study_report(self.out, metrics)
        write_manifest(self.out, "experiment", config=self.config.to_dict(),
                       inputs=fingerprint([self.train_dir, self.test_dir]), owns_folder=True)  # every file, at the end
        return metrics


def run_experiment(
    train_dir: Path,
    test_dir: Path,
    out_dir: Path,
    config: ExperimentConfig,
    *,
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    realism: bool = True,
    workers: int = 1,
) -> dict:
    """Run (or resume) the study; returns the content of ``OUT/metrics.json`` and writes ``OUT/report.html``.

    Stages whose outputs are complete (recorded in ``OUT/state.json``) are skipped, so an interrupted run
    continues where it stopped. Restarting with another config, seed or data (folders or their content) is refused
    unless ``overwrite`` starts the study over.
    ``threads`` sets torch's intra-op threads for the run (restored afterwards); on shared, oversubscribed
    cores 1 thread is many times faster than 2 for these small models. ``realism``: run the realism stage (a
    cross-validated study measures realism once over all folds instead). ``workers`` > 1 runs stages that do not
    depend on each other at once, in that many worker processes with ``threads`` threads each (None: this
    process's torch threads shared out, ``claim.training.parallel.worker_threads``); every stage computes what
    it would alone with that thread count.
    """
    check_workers(workers)
    with torch_threads(threads):
        return _Study(train_dir, test_dir, out_dir, config, seed, device, progress, overwrite, realism, workers,
                      threads).run()


def _stage_in_worker(spec: tuple, name: str) -> float:
    """Run one stage of the study ``spec`` describes in this (worker) process; its seconds."""
    stage = next(s for s in _Study(*spec).stages() if s.name == name)
    start = time.perf_counter()
    stage.run()
    return time.perf_counter() - start
