"""The photo models against the default models and bicubic, on clean and degraded test sets, with the
denoise dial in between.

For one scale: bicubic, ``default-xS``, the ``--denoise`` blends 0.5 (and any others asked for), and
``photo-xS`` (``--denoise 1``; ``--denoise 0`` is ``default-xS`` exactly), each evaluated by ``pclup bench``'s
evaluator (fp32) on the clean sets and on their seeded degraded variants (``-real``: the realistic pipeline,
seed 0; ``-jpeg30``: the bicubic LR as a quality-30 JPEG). A model folder may stand in for ``photo-xS``
(``--photo DIR``, e.g. a run's model before it ships).

Usage:
    python benchmarks/photo_eval.py --scale 4 --json runs/photo/eval-x4.json
        [--photo runs/photo/photo-x4-l1/model] [--sets B100 B100-real Urban100-real Set14-jpeg30]
        [--blend 0.5] [--data-dir DIR]

Prints a Markdown table (set, then one column per model) and the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pclup.bench import benchmark  # noqa: E402
from pclup.weights import blend_models, load_model, save_pretrained  # noqa: E402

DEFAULT_SETS = ("Set5", "Set14", "B100", "Urban100", "Set5-real", "Set14-real", "B100-real", "Urban100-real",
                "Set14-jpeg30", "B100-jpeg30")


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    have = [f for f in wanted if f" {f}" in flags]
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "CPU")
    return f"{model}; {' '.join(have)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--photo", help="model folder standing in for photo-xS (default: the built-in one)")
    parser.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS))
    parser.add_argument("--blend", type=float, nargs="*", default=[0.5], help="denoise values between 0 and 1")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    s = args.scale
    clean = load_model(f"default-x{s}")
    photo = load_model(args.photo or f"photo-x{s}")
    with tempfile.TemporaryDirectory() as tmp:
        models = ["bicubic", f"default-x{s}"]
        names = {"bicubic": "bicubic", f"default-x{s}": f"default-x{s} (denoise 0)"}
        for t in args.blend:
            folder = Path(tmp) / f"denoise-{t:g}"
            save_pretrained(blend_models(clean, photo, t).model, folder)
            models.append(str(folder))
            names[str(folder)] = f"denoise {t:g}"
        photo_spec = args.photo or f"photo-x{s}"
        models.append(photo_spec)
        names[photo_spec] = f"photo-x{s} (denoise 1)"
        report = benchmark(models, args.sets, [s], data_dir=args.data_dir, precision="fp32")
    table: dict[str, dict[str, float]] = {}
    for r in report.results:
        table.setdefault(r.dataset, {})[names.get(r.model, r.model)] = r.psnr
    columns = [names[m] for m in models]
    print(f"x{s}, PSNR (dB) on Y; {cpu_flags()}; torch {torch.__version__}")  # noqa: T201
    print("| set | " + " | ".join(columns) + " |")  # noqa: T201
    print("|---" * (len(columns) + 1) + "|")  # noqa: T201
    for dataset, row in table.items():
        print(f"| {dataset} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")  # noqa: T201
    if args.json:
        doc = report.to_json()
        doc["names"] = names
        doc["machine"] = cpu_flags()
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
