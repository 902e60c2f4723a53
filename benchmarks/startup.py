"""Start-up: how long the commands that need no tensor take, and whether they import torch.

Each command runs ``--repeats`` times as a fresh process (``python -m pclup ...``); the median wall time is
printed with the time of ``python -c "import torch"`` measured the same way, as the reference of what the
commands avoid. A separate run with ``-X importtime`` says whether torch was imported at all.

Usage: python benchmarks/startup.py [--repeats 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

COMMANDS: dict[str, list[str]] = {
    "pclup --help": ["--help"],
    "pclup models": ["models"],
    "pclup info default-x4": ["info", "default-x4"],
    "pclup upscale missing.png (usage error)": ["upscale", "missing.png"],
    "pclup upscale x.png -m no-such-model (usage error)": ["upscale", "{dir}", "-m", "no-such-model"],
    "pclup bench --set Set6 (usage error)": ["bench", "-m", "bicubic", "--set", "Set6"],
    "pclup finetune --data missing/ (usage error)": ["finetune", "--data", "missing"],
}


def cpu() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), ""
    )
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return f"{model} ({' '.join(have)})"


def timed(argv: list[str], repeats: int, cwd: str) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def imports_torch(argv: list[str], cwd: str) -> bool:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:]], cwd=cwd, capture_output=True, text=True
    )
    return any(line.rstrip().endswith("| torch") for line in run.stderr.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        reference = timed([sys.executable, "-c", "import torch"], args.repeats, tmp)
        for name, command in COMMANDS.items():
            argv = [sys.executable, "-m", "pclup", *[a.replace("{dir}", tmp) for a in command]]
            rows.append(
                {
                    "command": name,
                    "seconds": timed(argv, args.repeats, tmp),
                    "imports_torch": imports_torch(argv, tmp),
                }
            )
    print(f"{cpu()}; Python {platform.python_version()}, torch {torch.__version__}; median of {args.repeats}")  # noqa: T201
    print("| command | seconds | imports torch |\n|---|---|---|")  # noqa: T201
    print(f"| python -c 'import torch' | {reference:.2f} | yes |")  # noqa: T201
    for r in rows:
        print(f"| {r['command']} | {r['seconds']:.2f} | {'yes' if r['imports_torch'] else 'no'} |")  # noqa: T201
    if args.json:
        args.json.write_text(
            json.dumps({"cpu": cpu(), "import_torch": reference, "rows": rows}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
