"""Peak resident memory of `pclup upscale` on a large image.

Makes a large RGB image (smooth gradients plus noise, so it compresses like a photo; PNG, or JPEG with
``--input-ext jpg``) and, unless ``--model`` names one, a model folder of ``--arch`` (random weights:
memory does not depend on the values), then runs the real command under `/usr/bin/time -v` and reads
"Maximum resident set size".

Targets: 2000x2000 x4 EDSR-S under 3 GB (the default run); 3000x2000 x4 with the default model to a JPEG
under 1.5 GB (``--size 3000x2000 --model default-x4 --input-ext jpg --ext jpg``).

Usage: python benchmarks/memory_upscale.py [--size 2000 | WxH] [--scale 4] [--arch edsr-s | --model SPEC]
           [--tile auto] [--input-ext png|jpg] [--ext png|jpg] [--precision auto]
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
    parser.add_argument("--size", default="2000", help="side, or WxH")
    parser.add_argument("--model", help="a model spec to use instead of a random --arch network")
    parser.add_argument("--input-ext", choices=["png", "jpg"], default="png")
    parser.add_argument("--ext", choices=["png", "jpg"], default="png", help="the output's format")
    parser.add_argument("--precision", default="auto")
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
        w, _, h = args.size.partition("x")
        width, height = int(w), int(h or w)
        yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
        base = np.stack([yy, xx, (yy + xx) / 2], axis=-1) * 200
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        src = work / f"big.{args.input_ext}"
        Image.fromarray(img).save(src, **({"quality": 90} if args.input_ext == "jpg" else {}))
        del img, base, yy, xx
        model = args.model
        if model is None:
            save_pretrained(create_model(args.arch, scale=args.scale), work / "model")
            model = str(work / "model")
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "pclup", "upscale", str(src),
               "-s", str(args.scale), "-m", model, "-o", str(work / f"out.{args.ext}"), "-t", args.tile,
               "--precision", args.precision, "--json"]
        start = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if run.returncode != 0:
            sys.exit(f"pclup failed:\n{run.stderr[-2000:]}")
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
        out = json.loads(run.stdout)
    result = {
        "image": f"{width}x{height}", "scale": args.scale, "model": args.model or f"{args.arch} (random)",
        "tile": args.tile, "output": args.ext, "peak_rss_kib": peak_kb,
        "peak_rss_gib": round(peak_kb / 1024**2, 3), "peak_rss_gb": round(peak_kb * 1024 / 1e9, 3),
        "seconds": round(seconds, 1),
        "output_size": out["files"][0]["output_size"], "precision": out["precision"],
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
