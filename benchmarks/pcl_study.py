"""The PCL study: bench groups of training runs (one group per loss, one run per seed) and compare them.

    python benchmarks/pcl_study.py --scale 4 --sets Set5 Set14 B100 Urban100 \
        --group l1=runs/study/x4-l1-s0,runs/study/x4-l1-s1 \
        --group pcl=runs/study/x4-pcl-s0,runs/study/x4-pcl-s1 \
        --group pcl-no-grad=runs/study/x4-nograd-s0,runs/study/x4-nograd-s1 \
        --json runs/study/x4.json

Every run folder's ``model/`` is benched (``pclup.bench.benchmark``, PSNR/SSIM on Y, MATLAB bicubic LR), in
one call so that every model sees the same LR images. Per group and set: mean PSNR, the spread between seeds
(max - min, and the sample standard deviation), and each run's training wall time (the last ``elapsed`` of
its ``log.jsonl``). The verdict line of each pair of groups says whether the difference of the means is
larger than the larger of the two groups' seed spreads (max - min); with two seeds per group that is the
most a reader can honestly claim.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pclup.bench import benchmark  # noqa: E402


def wall_seconds(run: Path) -> float | None:
    """Training wall time of a run: the last ``elapsed`` in its log (None for logs written before it existed)."""
    elapsed = None
    for line in (run / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        elapsed = record.get("elapsed", elapsed)
    return elapsed


def parse_groups(values: list[str]) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for value in values:
        name, _, runs = value.partition("=")
        if not runs:
            raise SystemExit(f"--group {value}: expected NAME=RUN[,RUN...]")
        groups[name] = [Path(r) for r in runs.split(",")]
        for run in groups[name]:
            if not (run / "model" / "model.safetensors").is_file():
                raise SystemExit(f"{run}: no model/model.safetensors (has the run finished?)")
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", action="append", required=True, help="NAME=RUN[,RUN...] (repeatable)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14", "B100", "Urban100"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument("--bench-json", type=Path, help="also write the raw bench document (pclup bench --json schema)")
    args = parser.parse_args()

    groups = parse_groups(args.group)
    specs = {str(run / "model"): (name, run) for name, runs in groups.items() for run in runs}
    report = benchmark(["bicubic", *specs], args.sets, [args.scale], data_dir=args.data_dir, precision="fp32")
    psnr: dict[tuple[str, str], list[float]] = {}
    ssim: dict[tuple[str, str], list[float]] = {}
    per_run: list[dict[str, object]] = []
    for r in report.results:  # r.model is the spec given
        name, run = specs.get(r.model, ("bicubic", None))
        psnr.setdefault((name, r.dataset), []).append(r.psnr)
        ssim.setdefault((name, r.dataset), []).append(r.ssim)
        if run is not None:
            per_run.append({"group": name, "run": str(run), "dataset": r.dataset, "psnr": r.psnr, "ssim": r.ssim})

    print(f"x{args.scale}, PSNR on Y (dB), mean over seeds [min, max]; SSIM mean")  # noqa: T201
    header = "| group | runs | " + " | ".join(args.sets) + " | wall per run (s) |"
    print(header)  # noqa: T201
    print("|" + "---|" * (len(args.sets) + 3))  # noqa: T201
    summary: dict[str, dict[str, object]] = {}
    for name in ["bicubic", *groups]:
        cells = []
        for dataset in args.sets:
            values = psnr[(name, dataset)]
            mean = statistics.fmean(values)
            s_mean = statistics.fmean(ssim[(name, dataset)])
            spread = f" [{min(values):.2f}, {max(values):.2f}]" if len(values) > 1 else ""
            cells.append(f"{mean:.3f}{spread} / {s_mean:.4f}")
            summary.setdefault(name, {})[dataset] = {
                "psnr": values, "mean": mean, "spread": max(values) - min(values),
                "stdev": statistics.stdev(values) if len(values) > 1 else 0.0, "ssim_mean": s_mean,
            }
        walls = [wall_seconds(run) for run in groups.get(name, [])]
        wall = ", ".join(f"{w:.0f}" if w is not None else "?" for w in walls) or "-"
        summary.setdefault(name, {})["wall_seconds"] = walls
        print(f"| {name} | {len(groups.get(name, [])) or '-'} | " + " | ".join(cells) + f" | {wall} |")  # noqa: T201

    names = list(groups)
    print()  # noqa: T201
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for dataset in args.sets:
                sa, sb = summary[a][dataset], summary[b][dataset]
                diff = sa["mean"] - sb["mean"]  # type: ignore[operator]
                noise = max(sa["spread"], sb["spread"])  # type: ignore[type-var]
                verdict = "exceeds" if abs(diff) > noise else "does not exceed"
                print(f"{a} - {b}, {dataset}: {diff:+.3f} dB; {verdict} the seed spread ({noise:.3f} dB)")  # noqa: T201
    if args.bench_json:
        args.bench_json.write_text(json.dumps(report.to_json(), indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"scale": args.scale, "groups": {k: [str(r) for r in v] for k, v in groups.items()},
                                         "summary": summary, "per_run": per_run, "device": report.device}, indent=2))


if __name__ == "__main__":
    main()
