"""Precision by measured quality: how far a model's bf16 (or fp16) output is from its fp32 output, by the
rule ``--precision auto`` follows, and the record of it beside each packaged model.

The rule: a reduced precision is allowed for a model when its written 8-bit output equals fp32's within
1 level on at least 99.9% of the values (pixels x channels) and its Set5 and Set14 PSNR (Y, border =
scale, as ``pclup bench`` scores) are within 0.01 dB of fp32's. Each model runs through ``Upscaler`` (what
``pclup upscale`` runs: untiled, channels_last, inference_mode) at fp32 and under bf16 (or fp16) autocast,
on the MATLAB-bicubic LR of each test image. Also reported: the largest difference before rounding, in
1/255 units.

``--fp32-layers A,B`` (repeatable) adds candidates that keep those submodules in float32 inside the bf16
run (``""``: none, always tried first); ``--record`` writes, for each packaged model measured, the first
candidate that passes (or that none did) into its folder's ``precision.json``, which ``auto`` reads.

On a CPU without native bf16 (AVX2 only) bf16 is emulated: slow, but numerically what AVX512-BF16 and AMX
compute (the same rounding to bf16 at each op autocast covers). fp16 runs under CPU autocast here only to
measure its rounding (``pclup upscale`` allows fp16 on GPUs only).

Usage: python benchmarks/precision_accuracy.py -m default-x4 [-m MODEL ...] [--set Set5 ...]
       [--precision bf16 --precision fp16] [--fp32-layers tail.1,add_mean ...] [--record] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _machine import cpu_flags  # noqa: E402

from pclup import images  # noqa: E402
from pclup.bench import load_hr  # noqa: E402
from pclup.datasets import resolve_dataset  # noqa: E402
from pclup.device import DTYPES, cpu_has_native_bf16  # noqa: E402
from pclup.imresize import bicubic_downscale_uint8, mod_crop  # noqa: E402
from pclup.inference.precision import RULE_SETS, keep_fp32, passes_rule  # noqa: E402
from pclup.inference.upscale import Upscaler  # noqa: E402
from pclup.metrics import evaluate_pair  # noqa: E402
from pclup.weights import PRECISION_FILE, LoadedModel, find_pretrained, load_model  # noqa: E402


def _upscaler(loaded: LoadedModel, precision: str) -> Upscaler:
    up = Upscaler(loaded, device="cpu", precision="fp32", tile=0)
    up.dtype = DTYPES[precision]  # autocast at this dtype (Upscaler itself refuses fp16 on a CPU)
    return up


def _fresh(spec: str, layers: tuple[str, ...]) -> LoadedModel:
    loaded = load_model(spec)
    keep_fp32(loaded.model, layers)
    return loaded


def measure(spec: str, sets: list[str], precision: str, candidates: list[tuple[str, ...]],
            data_dir: str | None) -> list[dict]:
    """One row per candidate (fp32 layers) at ``precision``: per set, the share of 8-bit values within 1
    level of fp32's, the largest float difference, both PSNRs; and the rule's verdict over ``sets``."""
    reference = _upscaler(load_model(spec), "fp32")
    scale = reference.scale
    runs = {c: _upscaler(_fresh(spec, c), precision) for c in candidates}
    per: dict[tuple[str, ...], dict[str, dict]] = {c: {} for c in candidates}
    for name in sets:
        files = resolve_dataset(name, data_dir).files
        acc = {c: {"within": 0, "values": 0, "max": 0.0, "max_levels": 0, "psnr": [], "ref": []}
               for c in candidates}
        for path in files:  # the LR and the scoring of `pclup bench`
            hr = mod_crop(load_hr(path), scale)
            x = images.to_tensor(bicubic_downscale_uint8(hr, scale))
            ref = reference.upscale_tensor(x).clamp(0, 1)
            ref8 = images.from_tensor(ref, np.uint8)
            ref_psnr = evaluate_pair(ref8, hr, scale)[0]
            for c, up in runs.items():
                out = up.upscale_tensor(x).clamp(0, 1)
                out8 = images.from_tensor(out, np.uint8)
                levels = np.abs(out8.astype(np.int16) - ref8.astype(np.int16))
                a = acc[c]
                a["within"] += int((levels <= 1).sum())
                a["values"] += levels.size
                a["max_levels"] = max(a["max_levels"], int(levels.max()))
                a["max"] = max(a["max"], float(((out - ref).abs() * 255).max()))
                a["psnr"].append(evaluate_pair(out8, hr, scale)[0])
                a["ref"].append(ref_psnr)
        for c, a in acc.items():
            per[c][name] = {
                "images": len(files), "within_one_level": a["within"] / a["values"],
                "max_levels": a["max_levels"], "max_diff_255": a["max"],
                "psnr_fp32": float(np.mean(a["ref"])), "psnr": float(np.mean(a["psnr"])),
                "psnr_delta": float(np.mean(a["psnr"]) - np.mean(a["ref"])),
            }
    rows = []
    for c in candidates:
        within = min(s["within_one_level"] for s in per[c].values())
        deltas = [s["psnr_delta"] for n, s in per[c].items() if n in RULE_SETS]
        rows.append({"model": spec, "precision": precision, "fp32_layers": list(c), "sets": per[c],
                     "within_one_level": within, "passes": passes_rule(within, deltas)
                     and all(n in per[c] for n in RULE_SETS)})
    return rows


def record(spec: str, rows: list[dict], meta: dict) -> Path | None:
    """Write the first passing candidate (or the verdict that none passed) into a packaged model's
    ``precision.json``."""
    pretrained = find_pretrained(spec)
    if pretrained is None or not pretrained.packaged or pretrained.name != spec:
        return None
    folder = pretrained.folder()
    chosen = next((r for r in rows if r["passes"]), None)
    doc = {
        "rule": "8-bit output within 1 level of float32's on at least 99.9% of values; Set5 and Set14 PSNR "
                "within 0.01 dB",
        "measured": meta,
        "weights_sha256": hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest(),
        rows[0]["precision"]: {
            "passes": chosen is not None,
            "fp32_layers": chosen["fp32_layers"] if chosen else [],
            "candidates": [{k: r[k] for k in ("fp32_layers", "passes", "within_one_level", "sets")}
                           for r in rows],
        },
    }
    path = folder / PRECISION_FILE
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", action="append", required=True, help="model spec (repeatable)")
    parser.add_argument("--set", action="append", help="test set (repeatable; default Set5 and Set14)")
    parser.add_argument("--precision", choices=["bf16", "fp16"], default="bf16",
                        help="precision compared with fp32 (default bf16)")
    parser.add_argument("--fp32-layers", action="append", default=[],
                        help="comma-separated submodules kept in fp32: one candidate (repeatable)")
    parser.add_argument("--record", action="store_true",
                        help="write the verdict into each packaged model's precision.json")
    parser.add_argument("--data-dir", help="folder of the test sets (default: PCLUP_DATA, ../shared/data)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sets = args.set or list(RULE_SETS)
    candidates = [()] + [tuple(n for n in c.split(",") if n) for c in args.fp32_layers if c]
    meta = {"date": time.strftime("%Y-%m-%d"), "cpu_flags": cpu_flags(), "native_bf16": cpu_has_native_bf16(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps(meta))  # noqa: T201
    print("| model | fp32 layers | set | within 1 level | max levels | max diff (1/255) | PSNR fp32 | "  # noqa: T201
          f"PSNR {args.precision} | delta | passes |")
    print("|---|---|---|---|---|---|---|---|---|---|")  # noqa: T201
    results = []
    for spec in args.model:
        rows = measure(spec, sets, args.precision, candidates, args.data_dir)
        results += rows
        for r in rows:
            for name, s in r["sets"].items():
                print(f"| {spec} | {', '.join(r['fp32_layers']) or '-'} | {name} | "  # noqa: T201
                      f"{s['within_one_level']:.4%} | {s['max_levels']} | {s['max_diff_255']:.3f} | "
                      f"{s['psnr_fp32']:.3f} | {s['psnr']:.3f} | {s['psnr_delta']:+.4f} | "
                      f"{'yes' if r['passes'] else 'no'} |", flush=True)
        if args.record and (path := record(spec, rows, meta)):
            print(f"recorded {path}")  # noqa: T201
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
