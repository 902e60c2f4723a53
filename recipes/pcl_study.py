"""The PCL study's training runs, resumably, two at a time (docs/results.md, "The study").

    python recipes/pcl_study.py [--runs ../runs/pcl-study] [--workers 2] [--only compact]
    python recipes/pcl_study.py --list
    python recipes/pcl_study.py --bench      # bench every finished run: RUNS/<name>.bench.json
    python recipes/pcl_study.py --report     # pclup compare per network: RUNS/compare-<net>.json, .md
    python recipes/pcl_study.py --controls   # per run, from its log: ratio, lambda, D loss, wall time

Every run is ``pclup finetune --config recipes/study-<net>-x4.toml --seed S --out RUNS/<name>`` plus its
arm's flags, one thread each. A run whose ``model/`` exists is skipped; one with a checkpoint is resumed
(``--resume``), so the script can be stopped at any moment and started again. Each run's output goes to
``RUNS/<name>.out``, the queue's progress to ``RUNS/queue.log``.

The cheap arm (``-lite``: HR-only positives, a 16-wide discriminator stepped every second step, ratio 0.05:
the settings that meet EDSR-S's cost budget) runs last for both networks; ``-lite4`` steps the
discriminator every fourth step instead, what the compact network's budget needs. The HR-only arm (and width 64, and the released BatchNorm grouping for L_CL) takes the automatic-lambda ratio that did better on Set5 validation over
the seeds finished when it starts (both ratio arms of every compact seed run first); EDSR-S's PCL arm takes
the ratio and positives of the best compact PCL arm, judged the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATIOS = ("0.05", "0.2")
LITE = ["--pcl-grad-ratio", "0.05", "--pcl-positives", "0", "--disc-width", "16", "--pcl-d-every", "2"]
LITE4 = [*LITE[:-1], "4"]


def arms() -> list[tuple[str, str, int, list[str] | str]]:
    """``(name, net, seed, flags)`` in the order they run; flags given as a string are chosen later."""
    jobs: list[tuple[str, str, int, list[str] | str]] = []
    for seed in (1, 2, 3):
        jobs.append((f"compact-l1-s{seed}", "compact", seed, ["--loss", "l1"]))
        for r in RATIOS:
            jobs.append((f"compact-pcl-r{r}-s{seed}", "compact", seed, ["--pcl-grad-ratio", r]))
    for seed in (1, 2, 3):
        jobs.append((f"compact-pcl-hronly-s{seed}", "compact", seed, "hr-only"))
    nograd = ["--pcl-no-grad", "--pcl-lambda", "0.01"]
    jobs.append(("compact-pcl-grouped-s1", "compact", 1, "grouped"))
    jobs.append(("compact-nograd-s1", "compact", 1, nograd))
    for seed in (1, 2):
        jobs.append((f"edsr-s-l1-s{seed}", "edsr-s", seed, ["--loss", "l1"]))
        jobs.append((f"edsr-s-pcl-best-s{seed}", "edsr-s", seed, "best"))
    jobs.append(("compact-pcl-width64-s1", "compact", 1, "width64"))
    # the cheap arm that meets the cost budget (benchmarks/pcl_overhead.py): HR-only positives, a 16-wide
    # discriminator stepped on every second step, the ratio of the best arm
    for seed in (1, 2, 3):
        jobs.append((f"compact-pcl-lite-s{seed}", "compact", seed, LITE))
    for seed in (1, 2, 3):  # the compact network's budget (3x) needs the discriminator every 4th step
        jobs.append((f"compact-pcl-lite4-s{seed}", "compact", seed, LITE4))
    for seed in (1, 2):
        jobs.append((f"edsr-s-pcl-lite-s{seed}", "edsr-s", seed, LITE))
    # No no-grad arm for seeds 2 and 3: seed 1's weights came out bit-identical to L1's (the discriminator
    # trains but nothing reaches the SR network), so the other seeds would repeat L1's runs at PCL's cost.
    return jobs


def final_val(run: Path) -> float | None:
    """The last Set5 validation PSNR in a finished run's log."""
    if not (run / "model" / "model.safetensors").is_file():
        return None
    psnr = None
    for line in (run / "log.jsonl").read_text().splitlines():
        psnr = json.loads(line).get("val_psnr", psnr)
    return psnr


def best_ratio(runs: Path) -> str:
    def score(r: str) -> float:
        vals = [v for s in (1, 2, 3) if (v := final_val(runs / f"compact-pcl-r{r}-s{s}")) is not None]
        return statistics.mean(vals) if vals else float("-inf")
    return max(RATIOS, key=score)


def choose(flags: str, runs: Path) -> list[str]:
    r = best_ratio(runs)
    if flags == "hr-only":
        return ["--pcl-grad-ratio", r, "--pcl-positives", "0"]
    if flags == "width64":
        return ["--pcl-grad-ratio", r, "--disc-width", "64"]
    if flags == "grouped":
        return ["--pcl-grad-ratio", r, "--pcl-cl-batchnorm", "grouped"]
    # best: the better of the ratio arm and its HR-only variant, by Set5 validation
    def mean(prefix: str) -> float:
        vals = [v for s in (1, 2, 3) if (v := final_val(runs / f"{prefix}-s{s}")) is not None]
        return statistics.mean(vals) if vals else float("-inf")
    hr_only = mean("compact-pcl-hronly") > mean(f"compact-pcl-r{r}")
    return ["--pcl-grad-ratio", r] + (["--pcl-positives", "0"] if hr_only else [])


SETS = ("Set5", "Set14", "B100", "Urban100")


def bench_runs(runs: Path, jobs: list[tuple[str, str, int, list[str] | str]]) -> None:
    """``pclup bench`` (fp32, Y channel, MATLAB bicubic LR) of every finished run without its JSON yet."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name, _, _, _ in jobs:
        run, out = runs / name, runs / f"{name}.bench.json"
        if out.is_file() or not (run / "model" / "model.safetensors").is_file():
            continue
        cmd = [sys.executable, "-m", "pclup", "bench", "-m", str(run / "model"), "-s", "4",
               *[a for s in SETS for a in ("--set", s)], "--precision", "fp32", "--json", str(out)]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"benched {name}", flush=True)


def report(runs: Path, jobs: list[tuple[str, str, int, list[str] | str]]) -> None:
    """One ``pclup compare`` per network: every arm with its benched seeds, the L1 arm the baseline."""
    for net in ("compact", "edsr-s"):
        groups: dict[str, list[str]] = {}
        for name, n, _, _ in jobs:
            bench = runs / f"{name}.bench.json"
            if n == net and bench.is_file():
                groups.setdefault(name.rsplit("-s", 1)[0], []).append(str(bench))
        if f"{net}-l1" not in groups or len(groups) < 2:
            continue
        arms = [a for name, files in groups.items() for a in ("--arm", f"{name}={','.join(files)}")]
        cmd = [sys.executable, "-m", "pclup", "compare", *arms, "--baseline", f"{net}-l1",
               "--json", str(runs / f"compare-{net}.json")]
        table = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
        (runs / f"compare-{net}.txt").write_text(table)
        markdown = power_table(json.loads((runs / f"compare-{net}.json").read_text()))
        (runs / f"compare-{net}.md").write_text(markdown)
        print(table + "\n" + markdown)


def power_table(doc: dict) -> str:  # type: ignore[type-arg]
    """The comparison as Markdown, with the smallest effect each row could have detected: 80% power at
    two-sided 5%, ``2.80 x`` the standard error read off the bootstrap interval (the t interval without
    seeds), whose half-width is ``1.96 x`` it."""
    lines = ["| set | arm | n | L1 dB | arm dB | diff dB | 95% CI (t) | 95% CI (bootstrap) | p | detectable |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["comparisons"]:
        low, high = (r["boot_low"], r["boot_high"]) if r["boot_low"] is not None else (r["t_low"], r["t_high"])
        mde = 2.80 * (high - low) / (2 * 1.96)
        boot = f"[{r['boot_low']:+.3f}, {r['boot_high']:+.3f}]" if r["boot_low"] is not None else "-"
        p = f"{r['p_value']:.2g} ({r['p_method']})" + (" descriptive" if r["descriptive"] else "")
        lines.append(f"| {r['dataset']} | {r['model']} | {r['n']} | {r['baseline_mean']:.3f} | "
                     f"{r['other_mean']:.3f} | {r['mean_diff']:+.3f} | [{r['t_low']:+.3f}, {r['t_high']:+.3f}] | "
                     f"{boot} | {p} | {mde:.3f} |")
    return "\n".join(lines) + "\n"


def controls(runs: Path, jobs: list[tuple[str, str, int, list[str] | str]]) -> None:
    """What the controls did in each finished run, read from its log: the measured gradient ratio and
    lambda (median and range over the logged steps), the discriminator's loss at the end of the warm-up
    (mean of the last three records) and over the run (median), against chance; the training wall time."""
    print("| run | ratio: median [min, max] | lambda: median [min, max] | D loss: end of warm-up / run (chance) "
          "| wall (min) |")
    print("|---|---|---|---|---|")
    for name, _, _, _ in jobs:
        log = runs / name / "log.jsonl"
        if not (runs / name / "model" / "model.safetensors").is_file():
            continue
        records = [json.loads(line) for line in log.read_text().splitlines()]
        steps = [r for r in records if "l1" in r]
        warm = [r for r in records if "warmup_step" in r]
        wall = steps[-1].get("elapsed", 0) / 60

        def spread(key: str, fmt: str) -> str:
            values = [r[key] for r in steps if key in r]
            if not values:
                return "-"
            return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"
        d_run = [r["d"] for r in steps if "d" in r]
        chance = warm[-1]["d_chance"] if warm else None
        d = (f"{statistics.mean(r['d'] for r in warm[-3:]):.1f} / {statistics.median(d_run):.1f} ({chance:.2f})"
             if warm and d_run else "-")
        print(f"| {name} | {spread('ratio', '.3f')} | {spread('lambda', '.5f')} | {d} | {wall:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT.parent / "runs" / "pcl-study")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=["compact", "edsr-s"], help="run one network's arms only")
    parser.add_argument("--list", action="store_true", help="print the runs and their state, run nothing")
    parser.add_argument("--bench", action="store_true", help="bench the finished runs, train nothing")
    parser.add_argument("--report", action="store_true", help="compare the benched runs, train nothing")
    parser.add_argument("--controls", action="store_true", help="summarise the finished runs' logs")
    args = parser.parse_args()
    runs: Path = args.runs
    runs.mkdir(parents=True, exist_ok=True)
    queue = [j for j in arms() if not args.only or j[1] == args.only]
    if args.controls:
        controls(runs, queue)
        return
    if args.bench or args.report:
        if args.bench:
            bench_runs(runs, queue)
        if args.report:
            report(runs, queue)
        return
    if args.list:
        for name, _, _, _ in queue:
            run = runs / name
            state = ("done" if (run / "model" / "model.safetensors").is_file()
                     else "checkpoint" if (run / "checkpoint").is_dir() else "to run")
            print(f"{name:32s} {state}")
        return
    lock = threading.Lock()
    log = open(runs / "queue.log", "a", buffering=1)  # noqa: SIM115 - open for the whole run

    def say(line: str) -> None:
        with lock:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                name, net, seed, flags = queue.pop(0)
            run = runs / name
            if (run / "model" / "model.safetensors").is_file():
                continue
            chosen = flags if isinstance(flags, list) else choose(flags, runs)
            cmd = [sys.executable, "-m", "pclup", "finetune", "--config", f"recipes/study-{net}-x4.toml",
                   "--seed", str(seed), "--out", str(run), *chosen]
            if (run / "checkpoint").is_dir():
                cmd += ["--resume", str(run)]
            elif run.exists():
                cmd += ["--overwrite"]  # a run stopped before its first checkpoint
            say("start " + " ".join(cmd))
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            with open(runs / f"{name}.out", "a") as out:
                code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
            say(f"end {name}: exit {code}")

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    say("queue empty")


if __name__ == "__main__":
    main()
