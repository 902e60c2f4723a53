"""How far a model's bf16 (and fp16) output is from its fp32 output, on real images with trained weights.

``--precision auto`` may pick bf16 only for architectures whose bf16 output stays within 0.5/255 of fp32
on real images. This measures it: each model runs through ``Upscaler`` (what ``pclup upscale``
runs: untiled, channels_last, inference_mode) at fp32 and under bf16 (and fp16) autocast, on the
MATLAB-bicubic LR of each test image; the outputs are compared as floats clamped to [0, 1], in 1/255
units, before any rounding to 8 bits. Also: the share of pixels that differ by more than 0.5/255 and the
PSNR (Y, border = scale, 8-bit output, as ``pclup bench`` scores) of each precision against HR, so the
cost in quality is seen beside the error.

On a CPU without native bf16 (AVX2 only) bf16 is emulated: slow, but numerically what AMX computes (the
same rounding to bf16 at each op autocast covers), so the accuracy measured here carries over. fp16 runs
under CPU autocast here only to measure its rounding (``pclup upscale`` allows fp16 on GPUs only); a GPU's
kernels may accumulate differently, so treat the fp16 figure as an estimate for GPUs.

Usage: python benchmarks/precision_accuracy.py -m default-x4 [-m MODEL ...] [--set Set5 ...]
       [--precision bf16 --precision fp16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pclup import images  # noqa: E402
from pclup.bench import load_hr  # noqa: E402
from pclup.datasets import resolve_dataset  # noqa: E402
from pclup.device import DTYPES  # noqa: E402
from pclup.imresize import bicubic_downscale_uint8, mod_crop  # noqa: E402
from pclup.inference.upscale import Upscaler  # noqa: E402
from pclup.metrics import evaluate_pair  # noqa: E402
from pclup.weights import LoadedModel, load_model  # noqa: E402

BOUND = 0.5  # in 1/255 units


def _upscaler(loaded: LoadedModel, precision: str) -> Upscaler:
    up = Upscaler(loaded, device="cpu", precision="fp32", tile=0)
    up.dtype = DTYPES[precision]  # autocast at this dtype (Upscaler itself refuses fp16 on a CPU)
    return up


def measure(spec: str, sets: list[str], precisions: list[str], data_dir: str | None) -> list[dict]:
    """One row per (set, precision): max |diff| against fp32, share of pixels over the bound, PSNRs."""
    loaded = load_model(spec)
    scale = loaded.scale
    reference = _upscaler(loaded, "fp32")
    runs = {p: _upscaler(loaded, p) for p in precisions}
    rows = []
    for name in sets:
        stats = {p: {"max": 0.0, "over": 0, "pixels": 0, "psnr": []} for p in precisions}
        ref_psnr = []
        for path in resolve_dataset(name, data_dir).files:  # the LR and the scoring of `pclup bench`
            hr = mod_crop(load_hr(path), scale)
            x = images.to_tensor(bicubic_downscale_uint8(hr, scale))
            ref = reference.upscale_tensor(x).clamp(0, 1)
            ref_psnr.append(evaluate_pair(images.from_tensor(ref, np.uint8), hr, scale)[0])
            for p, up in runs.items():
                out = up.upscale_tensor(x).clamp(0, 1)
                d = ((out - ref).abs() * 255).numpy()
                s = stats[p]
                s["max"] = max(s["max"], float(d.max()))
                s["over"] += int((d > BOUND).sum())
                s["pixels"] += d.size
                s["psnr"].append(evaluate_pair(images.from_tensor(out, np.uint8), hr, scale)[0])
        for p, s in stats.items():
            rows.append({
                "model": spec, "arch": loaded.arch.name, "scale": scale, "set": name, "precision": p,
                "images": len(ref_psnr), "max_diff_255": s["max"],
                "share_over_bound": s["over"] / s["pixels"],
                "within_bound": s["max"] <= BOUND, "psnr_fp32": float(np.mean(ref_psnr)),
                "psnr": float(np.mean(s["psnr"])),
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", action="append", required=True, help="model spec (repeatable)")
    parser.add_argument("--set", action="append", help="test set (repeatable; default Set5 and Set14)")
    parser.add_argument("--precision", action="append", choices=["bf16", "fp16"],
                        help="precision compared with fp32 (repeatable; default bf16)")
    parser.add_argument("--data-dir", help="folder of the test sets (default: PCLUP_DATA, ../shared/data)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sets = args.set or ["Set5", "Set14"]
    results = []
    head = f"| model | set | precision | max abs diff (1/255) | pixels over {BOUND}/255 | PSNR fp32 | PSNR |"
    print(head)  # noqa: T201
    print("|---|---|---|---|---|---|---|")  # noqa: T201
    for spec in args.model:
        for row in measure(spec, sets, args.precision or ["bf16"], args.data_dir):
            results.append(row)
            print(f"| {spec} | {row['set']} | {row['precision']} | {row['max_diff_255']:.3f} | "  # noqa: T201
                  f"{row['share_over_bound']:.3%} | {row['psnr_fp32']:.3f} | {row['psnr']:.3f} |", flush=True)
    if args.json:
        doc = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "bound_255": BOUND, "results": results}
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
