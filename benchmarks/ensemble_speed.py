"""An ensemble's members trained at once in worker processes against one after another, in one run (read the ratio).

The standard segmenter recipe with two members (``claim train-segmenter --preset standard``), on phantom patients,
``--steps`` steps per member, with the command's torch threads: once with ``member_workers`` 1 (each member in
turn, with all the threads) and once with the default (on a CPU, the members side by side in worker processes
sharing the threads), alternating ``--repeats`` times so that machine load drifts over both alike. Each timing is
the whole ``train_segmenter`` call (workers' start-up, data, training, the final checkpoint; no validation
patients), so the ratio is what a user's run gains, start-up included. Prints a table, saves JSON.

    python benchmarks/ensemble_speed.py --threads 2 --steps 60 --out outputs/benchmarks/ensemble_speed.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from claim.data.io import write_json  # noqa: E402
from claim.phantom import PhantomConfig, write_phantom_cohort  # noqa: E402
from claim.runtime import torch_threads  # noqa: E402
from claim.segmentation.config import segmenter_preset  # noqa: E402
from claim.segmentation.train import train_segmenter  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="the command's torch threads")
    parser.add_argument("--steps", type=int, default=60, help="training steps per member")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds of the two ways")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "ensemble_speed.json")
    args = parser.parse_args(argv)
    if min(args.threads, args.steps, args.repeats) < 1:
        parser.error("--threads, --steps and --repeats must be >= 1")
    config = segmenter_preset("standard", members=2, steps=args.steps, val_every=args.steps, val_fraction=0.0)
    seconds: dict[str, list[float]] = {"in turn": [], "at once": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_phantom_cohort(data, 6, seed=0, config=PhantomConfig(shape=(256, 256), spacing_mm=1.4), progress=False)
        for repeat in range(args.repeats):
            for way, workers in (("in turn", 1), ("at once", None)):
                out = Path(tmp) / f"run_{repeat}_{way.replace(' ', '_')}"
                with torch_threads(args.threads):
                    start = time.perf_counter()
                    train_segmenter([data], out, config, seed=0, progress=False, precision=args.precision,
                                    member_workers=workers)
                    seconds[way].append(time.perf_counter() - start)
                recorded = json.loads((out / "config.json").read_text())
                print(f"round {repeat}: {way:8s} {seconds[way][-1]:6.1f} s "
                      f"({recorded['member_workers']} worker(s) of {recorded['member_threads']} thread(s))")
                shutil.rmtree(out)
    results = {"threads": args.threads, "steps_per_member": args.steps, "members": 2, "precision": args.precision,
               "seconds": seconds,
               "member_steps_per_s": {way: 2 * args.steps / float(np.median(s)) for way, s in seconds.items()},
               "at_once_over_in_turn": float(np.median(seconds["in turn"]) / np.median(seconds["at once"]))}
    for way, rate in results["member_steps_per_s"].items():
        print(f"{way:8s}: {rate:.3f} member steps/s (median of {args.repeats})")
    print(f"at once over in turn: {results['at_once_over_in_turn']:.2f}x")
    write_json(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
