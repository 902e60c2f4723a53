"""Does learning work? Two short CPU runs of EDSR-S x2 on ../shared/data/train, --loss l1 and --loss pcl,
each benchmarked on Set5 against bicubic (acceptance: both beat bicubic).

The runs share seed, data order and steps, so they differ only in the loss. Each run's wall time is
recorded; the step count is sized so that one run takes about ten minutes on this project's 2-core CPU.

Usage: python benchmarks/learning_check.py [--steps 300] [--out runs/learning] [--json docs-figures.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "learning")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--losses", nargs="+", default=["l1", "pcl"])
    args = parser.parse_args()
    data = Path(os.environ.get("PCLUP_DATA", ROOT.parent / "shared" / "data"))
    rows = []
    for loss in args.losses:
        out = args.out / loss
        cmd = [sys.executable, "-m", "pclup", "train", "--data", str(data / "train"), "--arch", "edsr-s", "-s", "2",
               "--loss", loss, "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--patch-size", str(args.patch_size),
               "--lr", str(args.lr), "--warmup-steps", str(max(1, args.steps // 15)), "--val-set", "none", "--out", str(out), "--seed", "0", "--overwrite"]
        start = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if run.returncode != 0:
            sys.exit(f"{loss} run failed:\n{run.stderr[-3000:]}")
        rows.append({"loss": loss, "train_seconds": round(seconds, 1), "model": str(out / "model")})
        print(f"{loss}: trained {args.steps} steps in {seconds:.0f} s", flush=True)
    bench_json = args.out / "bench.json"
    cmd = [sys.executable, "-m", "pclup", "bench", "-m", "bicubic", *[a for r in rows for a in ("-m", r["model"])],
           "--set", "Set5", "-s", "2", "--data-dir", str(data), "--json", str(bench_json), "--markdown"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"bench failed:\n{run.stderr[-3000:]}")
    print(run.stdout)
    results = json.loads(bench_json.read_text())["results"]
    summary = {"steps": args.steps, "batch_size": args.batch_size, "patch_size": args.patch_size, "lr": args.lr, "runs": rows, "bench": results,
               "date": time.strftime("%Y-%m-%d")}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
