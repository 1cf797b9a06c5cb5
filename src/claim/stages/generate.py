"""``claim generate`` stage: paint scar into normal patients inside ``claim masks`` label maps, write full-size outputs.

Per mask (an entry of ``MASKS_DIR/masks.json``) the source patient is painted by
``claim.generator.inpaint.inpaint_patient`` and written in the source grid and layout (or as an nnU-Net dataset),
with a record per output file in ``generation.json``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from claim import __version__
from claim.data.io import check_label_values, read_nifti, read_png, write_json
from claim.data.layouts import read_dataset
from claim.data.patient import Layout, Patient
from claim.data.write import check_output_location, patient_files, write_nnunet_dataset_json, write_patient
from claim.errors import ClaimError, InputError
from claim.generator.checkpoint import LoadedGenerator, load_generator
from claim.generator.condition import HIST_RULES
from claim.generator.histogram import perturb_histogram
from claim.generator.inpaint import choose_condition, inpaint_patient
from claim.generator.preview import label_panel, write_grid
from claim.generator.sampling import DDIM_KINDS, SamplerSpec, parse_sampler
from claim.labels import EMIDEC_LABELS
from claim.output import file_sha256, staged_output
from claim.stages.masks import MASKS_FILE

__all__ = ["GENERATION_FILE", "GenerateResult", "read_mask_labels", "generate_scars",
           "parse_shard", "generation_file_name"]

GENERATION_FILE = "generation.json"
_SLICE = re.compile(r"_slice(\d+)$")


@dataclass(frozen=True)
class GenerateResult:
    """Written entries (as in ``generation.json``) and the output folder."""

    entries: list[dict]
    out_dir: Path


def read_mask_labels(masks_dir: Path, entry: dict, source: Patient) -> np.ndarray:
    """The ``(S, H, W)`` label maps of one ``masks.json`` entry, aligned with the source patient's slices."""
    masks_dir = Path(masks_dir)
    files = [masks_dir / f for f in entry["files"]]
    for f in files:
        if not f.is_file():
            raise InputError(f, f"label file of mask {entry['id']} not found")
    if len(files) == 1 and not files[0].name.endswith(".png"):
        labels = np.moveaxis(read_nifti(files[0]).data, 2, 0)
    else:
        by_position = {}
        for f in files:
            match = _SLICE.search(Path(f.name).stem)
            by_position[int(match[1]) if match else len(by_position)] = read_png(f)
        order = list(source.slice_positions) if set(by_position) == set(source.slice_positions) else sorted(by_position)
        labels = np.stack([by_position[k] for k in order])
    if labels.shape != source.images.shape:
        raise InputError(files[0], f"mask {entry['id']} has shape {labels.shape}, source {entry['source_id']} "
                                   f"has {source.images.shape}")
    return check_label_values(np.round(labels).astype(np.int64), EMIDEC_LABELS, files[0])


def _fixed_cluster(choice: str | int, n_centres: int) -> int | None:
    """The centre index a ``--hist-cluster`` value fixes, or None for a drawing rule (``HIST_RULES``)."""
    if str(choice) in HIST_RULES:
        return None
    try:
        k = int(choice)
    except ValueError as exc:
        raise ClaimError(f"--hist-cluster {choice!r} must be an integer or one of {', '.join(HIST_RULES)}") from exc
    if not 0 <= k < n_centres:
        raise ClaimError(f"--hist-cluster {k} out of range; checkpoint has {n_centres} centres (0..{n_centres - 1})")
    return k


def _read_masks_json(masks_dir: Path) -> list[dict]:
    path = Path(masks_dir) / MASKS_FILE
    if not path.is_file():
        raise InputError(path, "masks.json not found (expected the output folder of `claim masks`)")
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc})") from exc
    if isinstance(entries, dict) and "masks" in entries:
        entries = entries["masks"]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(path, "expected a list of mask entries")
    for e in entries:
        missing = [k for k in ("id", "source_id", "files") if k not in e]
        if missing:
            raise InputError(path, f"mask entry {e.get('id', '?')} lacks {missing}")
    return entries


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; a ``ValueError`` explains a bad value."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError as exc:
        raise ValueError(f"shard {text!r} must be I/N with integers, e.g. 0/4") from exc
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {text!r} needs N >= 1 and 0 <= I < N (0-based)")
    return i, n


def generation_file_name(shard: tuple[int, int] | None) -> str:
    """``generation.json``, or ``generation_shard<i>of<n>.json`` for a shard (shards may share an output folder)."""
    return GENERATION_FILE if shard is None else f"generation_shard{shard[0]}of{shard[1]}.json"


def generate_scars(
    model: Path,
    data_dir: Path,
    masks_dir: Path,
    out_dir: Path,
    *,
    sampler: str | None = None,
    hist_cluster: str | int = "matched",
    seed: int = 0,
    limit: int | None = None,
    guidance: float = 1.0,
    device: str = "cpu",
    output_format: str = "layout",
    include_real: Path | None = None,
    previews: bool = True,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    precision: str = "fp32",
) -> GenerateResult:
    """Generate one synthetic patient per mask entry.

    Args:
        model: generator checkpoint.
        data_dir: folder of source (normal) patients; entries' ``source_id`` name them.
        masks_dir: ``claim masks`` output (``masks.json`` + label maps).
        out_dir: output folder (refused inside an input folder).
        sampler: ``ddim:K``, ``ddpm:K``, ``repaint:LxN``, ``dpmO:K`` or ``unipcO:K``; default: the checkpoint's
            ``default_sampler``.
        hist_cluster: index of the stored histogram centre, or a rule drawing one per mask: ``matched`` (a centre
            that suits the canvas's intensity level, ``claim.generator.condition``), ``mapped`` (that centre moved
            into the canvas's intensity frame) or ``random`` (uniform).
        seed: the same seed gives the same files.
        limit: at most this many masks (in ``masks.json`` order).
        guidance: classifier-free guidance scale (1 = conditional only; other values double the NFE).
        device: ``cpu`` | ``cuda`` | ``auto``.
        output_format: ``layout`` (mirror the source layout) or ``nnunet`` (nnU-Net v2 raw dataset).
        include_real: with ``nnunet``, also write these real patients into the dataset.
        previews: write ``previews/<mask>_slice<k>.png`` (source | mask | synthetic crops).
        precision: ``fp32`` | ``bf16`` | ``auto`` autocast of the denoiser (recorded as run).
        shard: ``(i, n)``: process only entries ``i, i + n, i + 2n, ...`` (0-based, after ``limit``). Each entry
            keeps the seed it has in the unsharded run, so a shard's files equal the unsharded run's for its
            entries; its record is ``generation_shard<i>of<n>.json`` (only its entries), so shards can write into
            one folder and the union of their records is the unsharded ``generation.json``. Not with ``nnunet``
            (each shard would write a ``dataset.json`` counting only its cases).
    """
    out_dir = out_dir_final = Path(out_dir)
    if output_format not in ("layout", "nnunet"):
        raise ClaimError(f"--format {output_format!r} must be layout or nnunet")
    if include_real is not None and output_format != "nnunet":
        raise ClaimError("--include-real only applies with --format nnunet")
    if shard is not None:
        i_shard, n_shard = shard
        if n_shard < 1 or not 0 <= i_shard < n_shard:
            raise ClaimError(f"--shard {i_shard}/{n_shard} needs N >= 1 and 0 <= I < N (0-based)")
        if output_format == "nnunet":
            raise ClaimError("--shard works with --format layout only; convert the merged folder afterwards")
    if limit is not None and limit < 1:
        raise ClaimError(f"--limit {limit} must be >= 1 (omit it for every mask)")
    if not math.isfinite(guidance) or guidance < 0:
        raise ClaimError(f"--guidance {guidance} must be a finite number >= 0 (1 = conditional only)")
    inputs = [Path(p) for p in (data_dir, masks_dir, include_real) if p is not None]
    check_output_location(out_dir, inputs)
    gen = load_generator(model, device, precision)
    sampler = sampler or gen.config.default_sampler
    try:
        spec = parse_sampler(sampler)
    except ValueError as exc:
        raise ClaimError(str(exc)) from exc
    if spec.kind in DDIM_KINDS and spec.steps > gen.config.timesteps:
        raise ClaimError(f"--sampler {spec}: the model has {gen.config.timesteps} diffusion steps; use "
                         f"{spec.kind}:K with K <= {gen.config.timesteps}")
    _fixed_cluster(hist_cluster, len(gen.hist_centres))  # a bad value fails before anything is painted
    entries_in = _read_masks_json(masks_dir)[: limit if limit is not None else None]
    sources = {p.patient_id: p for p in read_dataset(Path(data_dir))}
    run_record = {"seed": seed, "model": str(model), "model_sha256": file_sha256(Path(model)),
                  "sampler_run": str(spec), "hist_cluster_option": str(hist_cluster),
                  # Denoiser evaluations per slice batch; guidance != 1 evaluates conditional and unconditional.
                  "nfe_per_batch": spec.nfe(gen.config.timesteps) * (1 if guidance == 1.0 else 2), "guidance": guidance,
                  "precision": gen.precision, "claim_version": __version__}
    part = None if shard is None else f"shard{shard[0]}of{shard[1]}"
    with staged_output(out_dir, "generate", overwrite=overwrite, config=run_record, inputs=[*inputs, Path(model)],
                       part=part) as out_dir:
        return _paint_all(gen, spec, entries_in, sources, masks_dir, data_dir, out_dir, final_dir=out_dir_final,
                          hist_cluster=hist_cluster, seed=seed, guidance=guidance, output_format=output_format,
                          include_real=include_real, previews=previews, shard=shard, run_record=run_record)


def _paint_all(gen: LoadedGenerator, spec: SamplerSpec, entries_in: list[dict], sources: dict[str, Patient],
                masks_dir: Path, data_dir: Path, out_dir: Path, *, final_dir: Path, hist_cluster: str | int,
                seed: int, guidance: float, output_format: str, include_real: Path | None, previews: bool,
                shard: tuple[int, int] | None, run_record: dict) -> GenerateResult:
    """Paint every (shard's) mask entry into ``out_dir`` (the staging folder); records name ``final_dir``'s files."""
    written: list[dict] = []
    n_cases = 0
    seeds = np.random.SeedSequence(seed).spawn(len(entries_in))
    fixed = _fixed_cluster(hist_cluster, len(gen.hist_centres))
    for index, entry in enumerate(entries_in):
        if shard is not None and index % shard[1] != shard[0]:
            continue  # the seed of entry `index` is still seeds[index]: shards reproduce the unsharded run
        source = sources.get(entry["source_id"])
        if source is None:
            raise InputError(Path(masks_dir) / MASKS_FILE,
                             f"mask {entry['id']}: source_id {entry['source_id']} not found in {data_dir}")
        label_maps = read_mask_labels(masks_dir, entry, source)
        rng = np.random.default_rng(seeds[index])
        if fixed is None:
            hist, k, rule = choose_condition(gen, source, label_maps, rng, str(hist_cluster))
        else:
            k, rule = fixed, "fixed"
            hist = perturb_histogram(gen.hist_centres[k], rng)
        tgen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        images, info = inpaint_patient(gen, source, label_maps, sampler=str(spec), hist=hist, guidance=guidance,
                                       torch_generator=tgen)
        synthetic = replace(source, patient_id=str(entry["id"]), images=images.astype(np.float32),
                            label_maps=label_maps.astype(np.uint8), slice_stems=(),
                            layout=Layout.NNUNET if output_format == "nnunet" else source.layout)
        write_patient(synthetic, out_dir)
        n_cases += 1
        image_files = patient_files(synthetic, out_dir, "image")
        label_files = patient_files(synthetic, out_dir, "label")
        painted = set(info["slices"])
        for j, (img_f, lab_f) in enumerate(zip(image_files, label_files, strict=True)):
            per_slice = len(image_files) > 1
            hit = (j in painted) if per_slice else bool(painted)
            src_paths = source.image_paths
            written.append({
                "image": str(img_f.relative_to(out_dir)),
                "label": str(lab_f.relative_to(out_dir)),
                "source_image": str(src_paths[j] if per_slice and j < len(src_paths) else src_paths[0]),
                "mask_id": str(entry["id"]),
                "sampler": str(spec),
                "nfe": info["nfe"] if hit else 0,
                "seconds": round(info["seconds"] * (1 if per_slice else len(painted)), 4) if hit else 0.0,
                "hist_cluster": k,
                "hist_rule": rule,  # how the centre was chosen: matched, random (also a fallback) or fixed
                "hist_condition": [round(float(v), 5) for v in hist],  # what G was asked to paint
                **run_record,
            })
        if previews:
            for k_slice, (src_crop, lab_crop, syn_crop) in zip(info["slices"], info["crops"], strict=True):
                name = f"{entry['id']}_slice{source.slice_positions[k_slice]:03d}.png"
                write_grid(out_dir / "previews" / name, [[src_crop, label_panel(lab_crop), syn_crop]])
    if output_format == "nnunet":
        if include_real is not None:
            for patient in read_dataset(Path(include_real)):
                if patient.patient_id in {e["mask_id"] for e in written}:
                    raise ClaimError(f"real patient {patient.patient_id} has the same id as a synthetic case")
                write_patient(replace(patient, layout=Layout.NNUNET, slice_stems=()), out_dir)
                n_cases += 1
        write_nnunet_dataset_json(out_dir, n_cases, name="claim_synthetic")
    write_json(out_dir / generation_file_name(shard), written)
    return GenerateResult(written, final_dir)
