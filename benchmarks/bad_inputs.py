"""Run the data-safety table as a user would, one `claim` process per row, and count tracebacks.

Builds a small phantom world (EMIDEC and 8/16-bit PNG layouts, a tiny generator and segmenter, masks) under
``--out``, runs every bad or unusual input of the table, prints one line per row (exit code and the first line
of the error), writes every command's stderr to ``OUT/stderr.log`` and the rows to ``OUT/bad_inputs.json``.
The figure to read is the last line: ``Traceback`` count over the whole log (must be 0).

    python benchmarks/bad_inputs.py --out outputs/benchmarks/bad_inputs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from claim.output import MANIFEST_NAME  # noqa: E402


def claim(*args: object, log: Path) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "claim", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    with log.open("a") as f:
        f.write(f"$ claim {' '.join(map(str, args))}\n{done.stderr}\n")
    lines = [line for line in done.stderr.splitlines() if "error" in line or "Traceback" in line]
    return done.returncode, (lines[0] if lines else "")


def flip(path: Path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    for i in np.random.default_rng(0).choice(np.arange(len(data) // 3, 2 * len(data) // 3), count, replace=False):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "bad_inputs")
    out = parser.parse_args().out
    if out.exists():
        shutil.rmtree(out)  # the benchmark's own folder
    out.mkdir(parents=True)
    log = out / "stderr.log"
    w = out / "world"
    run = lambda *a: claim(*a, log=log)  # noqa: E731
    run("phantom", "--out", w / "emidec", "--patients", "6", "--seed", "11")
    from dataclasses import replace

    from claim.data.layouts import read_dataset
    from claim.data.patient import Layout
    from claim.data.write import write_patient

    for name, top, dtype in (("png", 255.0, "uint8"), ("png16", 4095.0, "uint16")):
        for p in read_dataset(w / "emidec"):
            scaled = p.images / max(float(p.images.max()), 1.0) * top
            write_patient(replace(p, images=scaled, layout=Layout.PNG, image_paths=(), label_paths=(),
                                  extra={"png_dtype": dtype}), w / name)
    run("train-generator", "--data", w / "emidec", "--out", w / "gen", "--preset", "tiny", "--steps", "2")
    run("train-segmenter", "--data", w / "emidec", "--out", w / "seg", "--preset", "tiny", "--steps", "2")
    run("masks", "--data", w / "png", "--out", w / "masks")
    run("masks", "--data", w / "png16", "--out", w / "masks16")
    gen, seg = w / "gen" / "generator.pt", w / "seg" / "segmenter.pt"

    gt = w / "gt"
    shutil.copytree(w / "emidec", gt)
    (gt / MANIFEST_NAME).unlink()
    broken = w / "broken.pt"
    shutil.copy(gen, broken)
    flip(broken)
    a_file = w / "a_file"
    a_file.write_text("x")
    notes = w / "notes.json"
    notes.write_text("my notes")
    prior_list = w / "prior_list.json"
    prior_list.write_text("[1, 2]")
    edited = w / "edited_config.json"  # a hand-edited -c file: a number written as a word
    saved = json.loads((w / "seg" / "config.json").read_text())
    edited.write_text(json.dumps(saved | {"config": saved["config"] | {"lr": "fast"}}))
    common_gen = ["generate", "--model", gen, "--data", w / "png", "--masks", w / "masks"]
    rows = [
        ("segment over ground-truth labels", ["segment", "--model", seg, "--data", w / "emidec", "--out", gt]),
        ("16-bit PNG sources", [*common_gen[:3], "--data", w / "png16", "--masks", w / "masks16", "--out",
                                w / "o16", "--sampler", "ddim:3"]),
        ("checkpoint with 64 flipped bytes: generate", ["generate", "--model", broken, "--data", w / "png", "--masks",
                                                        w / "masks", "--out", w / "o1"]),
        ("--guidance nan", [*common_gen, "--out", w / "o2", "--guidance", "nan"]),
        ("--limit -1", [*common_gen, "--out", w / "o3", "--limit", "-1"]),
        ("--steps -5", ["train-generator", "--data", w / "emidec", "--out", w / "o4", "--steps", "-5"]),
        ("ddim:1000 on a T=300 model", [*common_gen, "--out", w / "o5", "--sampler", "ddim:1000"]),
        ("re-run masks into a used --out", ["masks", "--data", w / "png", "--out", w / "masks", "--seed", "3"]),
        ("train-generator --resume with other data", ["train-generator", "-c", w / "gen" / "config.json", "--data",
                                                      w / "png", "--out", w / "gen", "--resume", "--steps", "4"]),
        ("--out is an existing file", ["aha", "--data", w / "png", "--out", a_file]),
        ("--out below a file", ["aha", "--data", w / "png", "--out", a_file / "x"]),
        ("unwritable output parent", ["aha", "--data", w / "png", "--out", "/sys/claim-out"]),
        ("--batch-size 0", ["train-segmenter", "--data", w / "emidec", "--out", w / "o6", "--batch-size", "0"]),
        ("--val-every 0", ["train-segmenter", "--data", w / "emidec", "--out", w / "o7", "--val-every", "0"]),
        ("--synthetic-fraction 1.5", ["train-segmenter", "--data", w / "emidec", "--out", w / "o8",
                                      "--synthetic-fraction", "1.5"]),
        ("--prior JSON that is a list", ["masks", "--data", w / "png", "--out", w / "o9", "--prior", prior_list]),
        ("masks --fit-prior -o an existing file", ["masks", "--fit-prior", w / "png", "-o", notes]),
        ("-c config.json with lr 'fast'", ["train-segmenter", "-c", edited, "--out", w / "o10"]),
    ]
    results = []
    for name, args in rows:
        code, first = run(*args)
        results.append({"row": name, "exit": code, "message": first})
        print(f"{name:45s} exit {code}  {first[:110]}")
    tracebacks = log.read_text().count("Traceback")
    (out / "bad_inputs.json").write_text(json.dumps({"rows": results, "tracebacks": tracebacks}, indent=2))
    print(f"Traceback count over {log}: {tracebacks}")


if __name__ == "__main__":
    main()
