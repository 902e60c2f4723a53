"""The default x4 model against EDSR-S x4: CPU time to upscale one 512x512 image, same run.

Both go through what ``pclup upscale`` runs (``Upscaler`` at fp32, untiled, inference_mode, channels_last)
on the same random 512x512 input. The default model is the packaged ``default-x4``; EDSR-S is the
architecture with random weights (its speed does not depend on the values of its weights, and its
trained weights need the network). Runs are interleaved (round-robin), 1 warm-up round, then the median of
``--repeats``. The target: the default at least 5x faster.

Usage: python benchmarks/default_speed.py [--repeats 5] [--size 512] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pclup.inference.upscale import Upscaler  # noqa: E402
from pclup.models import create_model  # noqa: E402
from pclup.weights import LoadedModel, load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    candidates = {
        "default-x4": load_model("default-x4"),
        "edsr-s x4": LoadedModel(create_model("edsr-s", scale=4).eval(), "edsr-s", "random weights"),
    }
    upscalers = {name: Upscaler(m, device="cpu", precision="fp32", tile=0) for name, m in candidates.items()}
    x = torch.rand(1, 3, args.size, args.size)
    times: dict[str, list[float]] = {name: [] for name in upscalers}
    for round_ in range(args.repeats + 1):
        for name, up in upscalers.items():
            start = time.perf_counter()
            up.upscale_tensor(x)
            if round_:  # round 0 warms up
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = median["edsr-s x4"] / median["default-x4"]
    print(f"{args.size}x{args.size} -> x4 on CPU, {torch.get_num_threads()} threads, median of {args.repeats}:")  # noqa: T201
    for name, t in times.items():
        print(f"  {name:12s} {median[name]:.3f} s  (min {min(t):.3f})")  # noqa: T201
    print(f"  default-x4 is {ratio:.1f}x faster than EDSR-S (target >= 5)")  # noqa: T201
    if args.json:
        args.json.write_text(json.dumps({
            "size": args.size, "threads": torch.get_num_threads(), "repeats": args.repeats, "seconds": times,
            "median": median, "speedup": ratio, "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        }, indent=2))


if __name__ == "__main__":
    main()
