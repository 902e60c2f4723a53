"""What PCL costs per training step: step time with PCL divided by step time with L1, in one process.

Each network is fine-tuned from its shipped model (compact: default-x4, EDSR-S: edsr-s-pcl-x4) on
../shared/data/train with the study's settings (x4, batch 16, 32-pixel LR patches, disc width 32, PCL with
3 + 3 samples, the discriminator step's BatchNorm batch joint), a few steps each after one warm-up step; the
trainer's per-phase timers say where the time goes. ``--precision`` fp32 (the study's, pinned) and/or auto
(bf16 where the CPU has it natively). ``--variant`` adds the method-changing arms: HR-only positives, a
16-wide discriminator, a discriminator step every 2 or 4 steps only. The CPU's flags are recorded with the
figures.

Usage: python benchmarks/pcl_overhead.py [--steps 8] [--archs compact edsr-s] [--precision fp32 auto]
           [--threads 1] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _machine import cpu_flags

from pclup.config import config_from_mapping
from pclup.training.loop import StepInfo, train

ROOT = Path(__file__).resolve().parents[1]
INIT = {"compact": "default-x4", "edsr-s": "edsr-s-pcl-x4", "rcan": None}
VARIANTS: dict[str, dict[str, Any]] = {
    "pcl": {},
    "pcl-hr-only": {"pcl_positives": 0},
    "pcl-width16": {"disc_width": 16},
    "pcl-separate-bn": {"pcl_d_batchnorm": "separate"},
    "pcl-d-every2": {"pcl_d_every": 2},
    "pcl-d-every4": {"pcl_d_every": 4},
    "pcl-width16-d-every2": {"disc_width": 16, "pcl_d_every": 2},
    "pcl-width16-d-every4": {"disc_width": 16, "pcl_d_every": 4},
    "pcl-width16-hr-only-d-every2": {"disc_width": 16, "pcl_positives": 0, "pcl_d_every": 2},
    "pcl-width16-hr-only-d-every4": {"disc_width": 16, "pcl_positives": 0, "pcl_d_every": 4},
}


def measure(arch: str, loss: str, steps: int, data: Path, batch: int, patch: int, precision: str,
            extra: dict[str, Any]) -> dict[str, object]:
    infos: list[StepInfo] = []
    init = INIT.get(arch)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_mapping(dict(
            data=(str(data),), **({"init": init} if init else {"arch": arch}), scale=4, patch_size=patch,
            batch_size=batch, steps=steps + 1, loss=loss, val_set=None, out=tmp, precision=precision,
            save_every=10**9, log_every=10**9, ema=0.999, **{"disc_width": 32, "pcl_d_batchnorm": "joint", **extra}))
        train(cfg, on_step=infos.append)
    timed = infos[1:]  # the first step pays for allocations and oneDNN primitive creation
    phases = sorted({k for i in timed for k in i.timings})
    return {
        # the mean, not the median: with --pcl-d-every k only every k-th step has a discriminator step
        # (the timed steps are a multiple of 4, so each variant's share of them is exact)
        "arch": arch, "loss": loss, "step_seconds": statistics.mean(i.seconds for i in timed),
        "phases": {k: statistics.mean(i.timings.get(k, 0.0) for i in timed) for k in phases},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8, help="timed steps, a multiple of 4")
    parser.add_argument("--archs", nargs="+", default=["compact", "edsr-s"])
    parser.add_argument("--precision", nargs="+", default=["fp32", "auto"])
    parser.add_argument("--variants", nargs="+", default=["pcl", "pcl-hr-only", "pcl-width16"],
                        choices=list(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="L1/PCL pairs per row; the median ratio")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(os.environ.get("PCLUP_DATA", ROOT.parent / "shared" / "data")) / "train"
    rows = []
    for arch in args.archs:
        for precision in args.precision:
            for variant in args.variants:
                # rounds of (L1, PCL) measured back to back: the ratio of each round, then their median, so
                # that a slow or fast stretch of the machine falls on both halves of a ratio
                rounds = []
                for _ in range(args.rounds):
                    l1 = measure(arch, "l1", args.steps, data, args.batch_size, args.patch_size, precision, {})
                    pcl = measure(arch, "pcl", args.steps, data, args.batch_size, args.patch_size, precision,
                                  VARIANTS[variant])
                    rounds.append((pcl["step_seconds"] / l1["step_seconds"], l1, pcl))  # type: ignore[operator]
                rounds.sort(key=lambda r: r[0])
                ratio, l1, pcl = rounds[len(rounds) // 2]
                spread = [round(r[0], 3) for r in rounds]
                rows.append({"arch": arch, "precision": precision, "variant": variant, "l1": l1, "pcl": pcl,
                             "ratio": ratio, "round_ratios": spread})
                phases = ", ".join(f"{k} {v:.3f}" for k, v in pcl["phases"].items())  # type: ignore[union-attr]
                print(f"{arch} {precision} {variant}: L1 {l1['step_seconds']:.3f} s/step, PCL "
                      f"{pcl['step_seconds']:.3f} s/step, ratio {ratio:.2f} (rounds {spread}; {phases})",
                      flush=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu_flags": cpu_flags(), "batch_size": args.batch_size, "patch_size": args.patch_size}
    print(json.dumps(meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
