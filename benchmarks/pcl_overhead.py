"""What PCL costs per training step: step time with --loss pcl divided by step time with --loss l1.

EDSR-S and RCAN at batch 16 with 48-pixel LR patches (x4) on ../shared/data/train, fp32 (this CPU has no
native bf16), a few steps each after one warm-up step; the trainer's own per-phase timers say where the
time goes (data, SR forward, sampler, discriminator step, embedding passes, SR backward and step).

Usage: python benchmarks/pcl_overhead.py [--steps 4] [--archs edsr-s rcan] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pclup.config import config_from_mapping
from pclup.training.loop import StepInfo, train

ROOT = Path(__file__).resolve().parents[1]


def measure(arch: str, loss: str, steps: int, data: Path, batch: int, patch: int, disc_width: int) -> dict[str, object]:
    infos: list[StepInfo] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_mapping(dict(
            data=(str(data),), arch=arch, scale=4, patch_size=patch, batch_size=batch, steps=steps + 1,
            loss=loss, val_set=None, out=tmp, precision="fp32", save_every=10**9, log_every=10**9,
            disc_width=disc_width, ema=0.0))
        train(cfg, on_step=infos.append)
    timed = infos[1:]  # the first step pays for allocations and oneDNN primitive creation
    phases = sorted({k for i in timed for k in i.timings})
    return {
        "arch": arch, "loss": loss, "step_seconds": statistics.median(i.seconds for i in timed),
        "phases": {k: statistics.median(i.timings.get(k, 0.0) for i in timed) for k in phases},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--archs", nargs="+", default=["edsr-s", "rcan"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=48)
    parser.add_argument("--disc-width", type=int, default=64)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = Path(os.environ.get("PCLUP_DATA", ROOT.parent / "shared" / "data")) / "train"
    rows = []
    for arch in args.archs:
        l1 = measure(arch, "l1", args.steps, data, args.batch_size, args.patch_size, args.disc_width)
        pcl = measure(arch, "pcl", args.steps, data, args.batch_size, args.patch_size, args.disc_width)
        ratio = pcl["step_seconds"] / l1["step_seconds"]  # type: ignore[operator]
        rows.append({"arch": arch, "l1": l1, "pcl": pcl, "ratio": ratio})
        print(f"{arch}: L1 {l1['step_seconds']:.2f} s/step, PCL {pcl['step_seconds']:.2f} s/step, ratio {ratio:.2f}", flush=True)
        print("  PCL phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in pcl["phases"].items()), flush=True)  # type: ignore[union-attr]
    meta = {"date": time.strftime("%Y-%m-%d"), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "batch_size": args.batch_size, "patch_size": args.patch_size, "disc_width": args.disc_width}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
