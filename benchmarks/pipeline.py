"""Where the time of one ``pclup upscale`` goes, end to end: a 1000x750 PNG at x4 (12 megapixels out).

The target: the total minus the network's time minus torch's import at most 1.5 s. The input is a real
photo (a 1000x750 crop of Urban100's img_002, 1024x768), so that PNG encoding sees real content.

Each round runs, as a fresh process, the same command a user types (``python -m pclup upscale IN -s 4 -o
OUT --overwrite``), timed from outside (the total), and once more inside a process that times the phases:
``python -c "import torch"`` alone (the import), and the upscale itself through the Typer app in process
with timers around torch's import, the model's loading, reading the input, the network's forward calls
(``Upscaler._forward``, every tile), and writing the output (``images.write_image``: conversion to the
encoder's layout, encoding, the atomic rename); what is left is the pipeline's own work (conversions,
tiling, checks, Python's start-up). Medians over ``--repeats`` rounds.

Usage: python benchmarks/pipeline.py [--repeats 5] [--png-level N] [--format png|jpg] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_flags

ROOT = Path(__file__).resolve().parents[1]

PHASED = r'''
import json, sys, time
t0 = time.perf_counter()
import torch
t_torch = time.perf_counter() - t0
from pclup import images
from pclup.inference import upscale as up
from pclup import weights
acc = {"network": 0.0, "write": 0.0, "read": 0.0, "load_model": 0.0}
def timed(name, fn):
    def inner(*a, **k):
        s = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc[name] += time.perf_counter() - s
    return inner
up.Upscaler._forward = timed("network", up.Upscaler._forward)
images.write_image = timed("write", images.write_image)
images.read_image = timed("read", images.read_image)
weights.load_model = timed("load_model", weights.load_model)
from pclup.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    acc["torch_import"] = t_torch
    acc["in_process"] = time.perf_counter() - t0
    print("PHASES " + json.dumps(acc), file=sys.stderr)
'''


def wall(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{run.stderr[-2000:]}")
    return seconds, run.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--format", choices=["png", "jpg"], default="png")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more upscale flags")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from PIL import Image

    data = Path(os.environ.get("PCLUP_DATA", ROOT.parent / "shared" / "data"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photo.png"
        Image.open(data / "Urban100" / "img_002.png").convert("RGB").crop((12, 9, 1012, 759)).save(src)
        out = Path(tmp) / f"out.{args.format}"
        upscale = ["upscale", str(src), "-s", "4", "-o", str(out), "--overwrite", "-q", *args.extra]
        rows = []
        for _ in range(args.repeats):
            total, _ = wall([sys.executable, "-m", "pclup", *upscale], env)
            imp, _ = wall([sys.executable, "-c", "import torch"], env)
            _, err = wall([sys.executable, "-c", PHASED, *upscale], env)
            phases = json.loads(err.split("PHASES ", 1)[1].splitlines()[0])
            rows.append({"total": total, "torch_import_alone": imp, **phases})
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        size = out.stat().st_size
    rest = med["total"] - med["network"] - med["torch_import_alone"]
    meta = {"date": time.strftime("%Y-%m-%d"), "cpu_flags": cpu_flags(), "cpus": os.cpu_count(),
            "format": args.format, "extra": args.extra, "output_bytes": size, "repeats": args.repeats}
    print(json.dumps(meta))  # noqa: T201
    for k, v in med.items():
        print(f"{k:20s} {v:7.3f} s")  # noqa: T201
    print(f"{'total - network - torch import':32s} {rest:.3f} s (target <= 1.5)")  # noqa: T201
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "median": med, "rest": rest, "rounds": rows}, indent=2))


if __name__ == "__main__":
    main()
