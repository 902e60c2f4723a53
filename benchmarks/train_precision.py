"""Training in bf16 against fp32: the step-time ratio and the PSNR of a short fine-tune each way.

``--precision auto`` trains in bf16 autocast where the device computes it natively, so a recipe that does
not pin its precision gives a result that depends on the CPU it lands on (every recipe in ``recipes/`` pins
it). This measures what is at stake, per network: the same fine-tune (from the shipped model, L1, same seed,
same batches) at fp32 and at bf16, in one process; the mean step time after two untimed steps, the
ratio fp32 / bf16, and each result's PSNR on Set5 and Set14 (x4, Y, scored in fp32 as ``pclup bench``).
The CPU's flags are recorded: without native bf16 (AVX2 only) bf16 is emulated and much slower.

Usage: python benchmarks/train_precision.py [--archs compact edsr-s] [--steps 300 100] [--threads 1]
           [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_flags  # noqa: E402

from pclup.bench import benchmark  # noqa: E402
from pclup.config import config_from_mapping  # noqa: E402
from pclup.training.loop import StepInfo, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INIT = {"compact": "default-x4", "edsr-s": "edsr-s-pcl-x4"}
SETS = ("Set5", "Set14")


def run(arch: str, precision: str, steps: int, data: Path, out: Path) -> dict[str, object]:
    infos: list[StepInfo] = []
    cfg = config_from_mapping(dict(
        data=(str(data / "train"),), init=INIT[arch], scale=4, patch_size=32, batch_size=16, steps=steps,
        loss="l1", lr=1e-4, warmup_steps=max(1, steps // 10), val_set=None, out=str(out), precision=precision,
        save_every=10**9, log_every=10**9, ema=0.999, seed=1))
    model = train(cfg, on_step=infos.append)
    results = benchmark([str(model)], list(SETS), [4], data_dir=str(data), precision="fp32").results
    return {"precision": precision, "step_seconds": statistics.mean(i.seconds for i in infos[2:]),
            "psnr": {r.dataset: r.psnr for r in results}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["compact", "edsr-s"], choices=list(INIT))
    parser.add_argument("--steps", nargs="+", type=int, default=[300, 100], help="per arch, in order")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(os.environ.get("PCLUP_DATA", ROOT.parent / "shared" / "data"))
    meta = {"date": time.strftime("%Y-%m-%d"), "cpu_flags": cpu_flags(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}
    print(json.dumps(meta), flush=True)  # noqa: T201
    rows = []
    for arch, steps in zip(args.archs, args.steps, strict=False):
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = run(arch, "fp32", steps, data, Path(tmp) / "fp32")
            bf16 = run(arch, "bf16", steps, data, Path(tmp) / "bf16")
        ratio = fp32["step_seconds"] / bf16["step_seconds"]  # type: ignore[operator]
        rows.append({"arch": arch, "steps": steps, "fp32": fp32, "bf16": bf16, "ratio": ratio})
        psnr = ", ".join(f"{s} {fp32['psnr'][s]:.3f} / {bf16['psnr'][s]:.3f}" for s in SETS)  # type: ignore[index]
        print(f"{arch} ({steps} steps): fp32 {fp32['step_seconds']:.3f} s/step, "  # noqa: T201
              f"bf16 {bf16['step_seconds']:.3f} s/step, ratio {ratio:.2f}; PSNR fp32 / bf16: {psnr}",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
