"""Copy a trained model folder into the package as a built-in model, with its model card.

    python scripts/ship_model.py runs/default/x4-stage2/model default-x4 \
        --bench runs/default/bench-x4.json --recipe recipes/compact-x4-stage1-l1.toml \
        --recipe recipes/compact-x4-stage2-pcl.toml --command "..." --command "..."

The card (README.md next to the weights) is written from the files given, never by hand: the recipes
verbatim, the commands, the bench table from a ``pclup bench --json`` document (with bicubic and, where
known, FSRCNN's published figures beside it), and the training log's wall time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pclup import __version__  # noqa: E402
from pclup.models import count_parameters  # noqa: E402
from pclup.weights import CONFIG_NAME, WEIGHTS_NAME, load_model  # noqa: E402

SETS = ("Set5", "Set14", "B100", "Urban100")
# FSRCNN (Dong et al., ECCV 2016), PSNR on Y as tabulated by later papers (e.g. VDSR, LapSRN).
FSRCNN = {
    2: {"Set5": 37.00, "Set14": 32.63, "B100": 31.53, "Urban100": 29.88},
    3: {"Set5": 33.16, "Set14": 29.43, "B100": 28.60, "Urban100": 26.48},
    4: {"Set5": 30.72, "Set14": 27.61, "B100": 26.98, "Urban100": 24.62},
}
# Published rows to print beside ours: (column title, {scale: {set: (psnr, ssim or None)}}).
PUBLISHED = {
    "fsrcnn": [("FSRCNN (published PSNR)", {s: {k: (v, None) for k, v in row.items()} for s, row in FSRCNN.items()})],
    # The PCL paper's main table, x4 (Wu, Jiang, Liu, TNNLS 2023; docs/method.md, "References").
    "none": [],
    "edsr-s": [
        ("paper EDSR-S", {4: {"Set5": (32.09, 0.8938), "Set14": (28.58, 0.7813), "B100": (27.57, 0.7357),
                              "Urban100": (26.04, 0.7849)}}),
        ("paper EDSR-S + PCL", {4: {"Set5": (32.17, 0.8948), "Set14": (28.61, 0.7825), "B100": (27.58, 0.7365),
                                    "Urban100": (26.07, 0.7863)}}),
    ],
}
DATA_TERMS = (
    "Trained on T91, BSD200 (BSDS300 train split) and General100, 391 HR images in all. The BSDS "
    "images are for non-commercial research and educational use (UC Berkeley); the other sets state no "
    "terms. The weights are released with pclup under its MIT licence; whether a dataset's terms reach "
    "weights trained on it is not settled law: check before commercial use."
)


def bench_rows(doc: dict, scale: int) -> dict[tuple[str, str], tuple[float, float]]:
    """``(model, set) -> (psnr, ssim)`` of one scale, in the document's order."""
    return {
        (r["model"], r["dataset"]): (r["psnr"], r["ssim"])
        for r in doc["results"]
        if r["scale"] == scale
    }


def _label(spec: str) -> str:
    """A run's name for a column: the folder above ``model/``."""
    path = Path(spec)
    return path.parent.name if path.name == "model" else path.name


def _cell(row: tuple[float, float | None] | None) -> str:
    if not row:
        return "-"
    return f"{row[0]:.2f} / {row[1]:.4f}" if row[1] is not None else f"{row[0]:.2f}"


def wall_time(run: Path) -> tuple[int, float | None]:
    """A run's last step and wall seconds from its log.jsonl (None when it logged no time).

    Since ``elapsed`` is kept in the checkpoint, a resumed run counts on from the checkpoint's time; steps
    logged after that checkpoint by the interrupted session are logged again, with a slightly smaller
    ``elapsed``, and are not counted twice. Runs logged before that restarted the clock at each session:
    there the segments are added.
    """
    steps, total, segment, timed = 0, 0.0, 0.0, False
    history: list[tuple[int, float]] = []  # (step, elapsed) since the clock last started
    for line in (run / "log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        step = int(entry.get("step", 0))
        steps = max(steps, step)
        if entry.get("elapsed") is None:
            continue
        timed = True
        elapsed = float(entry["elapsed"])
        if elapsed < segment:  # a resumed session: the clock went on from a checkpoint, or restarted
            before = [e for s, e in history if s < step]
            if not before or elapsed < before[-1]:  # restarted: add the finished segment
                total += segment
                history = []
            else:  # went on from the checkpoint: forget the replayed steps
                history = [(s, e) for s, e in history if s < step]
        segment = elapsed
        history.append((step, elapsed))
    return steps, (total + segment) if timed else None


def card(name: str, folder: Path, args: argparse.Namespace) -> str:
    loaded = load_model(str(folder))
    scale = loaded.scale
    rows: dict[tuple[str, str], tuple[float, float]] = {}
    for bench in args.bench:  # several documents: their rows together
        rows.update(bench_rows(json.loads(Path(bench).read_text()), scale))
    models = sorted({m for m, _ in rows})
    ours = args.bench_name or next(m for m in models if m != "bicubic")
    others = args.compare_with or [m for m in models if m not in (ours, "bicubic")]  # e.g. the other loss
    published = [(title, table.get(scale, {})) for title, table in PUBLISHED[args.published]]
    published = [(title, row) for title, row in published if row]
    sets = [ds for m, ds in rows if m == ours and (ds in SETS or "-" in ds)]
    sets = sorted(dict.fromkeys(sets), key=lambda ds: (ds.split("-")[0] not in SETS, "-" in ds,
                                                      SETS.index(ds.split("-")[0]) if ds.split("-")[0] in SETS else 0))
    degraded = any("-" in ds for ds in sets)
    lines = [
        f"# {name}: {args.title}",
        "",
        f"- architecture: `{loaded.arch.name}` ({loaded.arch.paper}), {count_parameters(loaded.model):,} "
        f"parameters, x{scale}",
        f"- weights: `model.safetensors` (float32), shipped inside pclup {__version__}",
        f"- use: `pclup upscale photo.png -m {name}`" + (" (or no `-m` at all)" if name.startswith("default") else ""),
        "",
        "## Bench (PSNR / SSIM on Y, border = scale, MATLAB bicubic LR; `pclup bench`)" if not degraded else
        "## Bench (PSNR / SSIM on Y, border = scale; `pclup bench`; `-real`: seeded realistic degradation, "
        "`-jpeg30`: the bicubic LR as a quality-30 JPEG, see docs/bench.md)",
        "",
        f"| set | this model ({_label(ours)}) | " + "".join(f"{_label(m)} | " for m in others) + "bicubic | "
        + "".join(f"{title} | " for title, _ in published),
        "|---" * (3 + len(others) + len(published)) + "|",
    ]
    for s in sets:
        cells = [_cell(rows[(ours, s)])] + [_cell(rows.get((m, s))) for m in others] + [_cell(rows.get(("bicubic", s)))]
        cells += [_cell(row.get(s)) for _, row in published]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("")
    if args.bench_command:
        lines += [f"Produced by: `{args.bench_command}`", ""]
    lines += ["## How it was trained", ""]
    if args.notes:
        lines += [Path(args.notes).read_text().strip(), ""]
    for command in args.command or []:
        lines += ["```bash", command, "```", ""]
    if args.run:
        lines += ["| run | steps | wall time |", "|---|---|---|"]
        for run in args.run:
            steps, seconds = wall_time(Path(run))
            lines.append(f"| {Path(run).name} | {steps} | {f'{seconds / 3600:.2f} h' if seconds else 'not logged'} |")
        lines += ["", f"Wall time from each run's log.jsonl; machine: {args.machine}." if args.machine
                  else "Wall time from each run's log.jsonl.", ""]
    for recipe in args.recipe or []:
        lines += [f"`{recipe}`:", "", "```toml", Path(ROOT / recipe).read_text().strip(), "```", ""]
    lines += ["## Data and terms", "", DATA_TERMS, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="trained model folder (config.json + model.safetensors)")
    parser.add_argument("name", help="built-in name, e.g. default-x4")
    parser.add_argument("--title", required=True, help="one line after the name")
    parser.add_argument("--bench", required=True, action="append",
                        help="pclup bench --json document with this model and bicubic (repeatable)")
    parser.add_argument("--bench-name", help="the model's name in that document (default: the one not bicubic)")
    parser.add_argument("--bench-command", help="the command that produced the bench document")
    parser.add_argument("--compare-with", action="append", help="other models of the document to show (default: all)")
    parser.add_argument("--recipe", action="append", help="recipe TOML (repeatable, in order)")
    parser.add_argument("--command", action="append", help="training command (repeatable, in order)")
    parser.add_argument("--notes", help="a markdown file of notes for the training section")
    parser.add_argument("--run", action="append", help="run folder: its log.jsonl gives steps and wall time")
    parser.add_argument("--machine", help="where the runs ran, for the wall-time table")
    parser.add_argument("--published", choices=sorted(PUBLISHED), default="fsrcnn",
                        help="published figures to print beside ours (default: FSRCNN)")
    args = parser.parse_args()

    src = Path(args.model)
    dst = ROOT / "src" / "pclup" / "pretrained" / args.name
    dst.mkdir(parents=True, exist_ok=True)
    for file in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copyfile(src / file, dst / file)
    (dst / "README.md").write_text(card(args.name, dst, args))
    size = sum(p.stat().st_size for p in dst.iterdir())
    print(f"wrote {dst} ({size / 1e6:.2f} MB)")  # noqa: T201


if __name__ == "__main__":
    main()
