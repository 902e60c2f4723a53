"""Peak resident memory of `pclup upscale` on a large image (acceptance: 2000x2000 x4 EDSR-S under 3 GB).

Makes a 2000x2000 RGB PNG (smooth gradients plus noise, so it compresses like a photo) and an EDSR-S x4
model folder (random weights: memory does not depend on the values), then runs the real command under
`/usr/bin/time -v` and reads "Maximum resident set size".

Usage: python benchmarks/memory_upscale.py [--size 2000] [--scale 4] [--arch edsr-s] [--tile auto]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--arch", default="edsr-s")
    parser.add_argument("--tile", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from pclup.models import create_model
    from pclup.weights import save_pretrained

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0 : args.size, 0 : args.size] / args.size
        base = np.stack([yy, xx, (yy + xx) / 2], axis=-1) * 200
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(work / "big.png")
        save_pretrained(create_model(args.arch, scale=args.scale), work / "model")
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "pclup", "upscale", str(work / "big.png"),
               "-m", str(work / "model"), "-o", str(work / "out"), "-t", args.tile, "--json"]
        start = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if run.returncode != 0:
            sys.exit(f"pclup failed:\n{run.stderr[-2000:]}")
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
        out = json.loads(run.stdout)
    result = {
        "image": f"{args.size}x{args.size}", "scale": args.scale, "arch": args.arch, "tile": args.tile,
        "peak_rss_gb": round(peak_kb / 1024**2, 3), "seconds": round(seconds, 1),
        "output_size": out["files"][0]["output_size"], "precision": out["precision"],
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
