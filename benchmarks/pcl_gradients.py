"""Where the contrastive gradient points: measured on a PCL run's checkpoint (its SR network and its trained
embedding network), on the batches of a few steps.

For each batch: the gradients on the SR output of L1 and of L_CL, their norm ratio and cosine; and L_CL's
gradient under the released code's BatchNorm grouping (the embedding network in training mode, the SR
output, each positive and each negative embedded in a call of its own, with its own batch statistics)
against pclup's (running statistics): if their cosine is near 1 the grouping does not matter for what the
SR network learns.

Usage: python benchmarks/pcl_gradients.py RUN [RUN ...] [--steps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from pclup.config import resolve_config
from pclup.contrastive import contrastive_term
from pclup.training.checkpoint import load_checkpoint
from pclup.training.loop import build_model, training_batches
from pclup.training.distributed import Distributed
from pclup.training.pcl import PCL
from pclup.weights import load_weights_strict


def measure(run: Path, steps: int) -> dict[str, object]:
    cfg = resolve_config(run / "config.toml", {"val_set": None})
    ckpt = load_checkpoint(run)
    model, _ = build_model(cfg.model, cfg.data.scale)
    load_weights_strict(model, ckpt.model, str(run))
    pcl = PCL(cfg.loss, seed=cfg.run.seed, colours=3, lr=cfg.optim.lr, device=torch.device("cpu"),
              channels_last=False)
    assert ckpt.disc is not None, f"{run}: not a PCL checkpoint"
    pcl.net.load_state_dict(ckpt.disc)
    _, batches = training_batches(cfg, Distributed())
    at = int(ckpt.state["step"])
    rows = []
    first = at if at + steps <= cfg.optim.steps else max(0, cfg.optim.steps - steps)  # batches of the run
    for step in range(first, first + steps):
        lr_t, hr_t = batches[step]
        sr = model(lr_t)
        l1 = F.l1_loss(sr, hr_t)
        pos, neg = pcl.sample(hr_t, lr_t, step)
        cl = pcl.contrastive_term(sr, pos, neg, lambda: torch.autocast("cpu", enabled=False))
        g_l1, = torch.autograd.grad(l1, sr, retain_graph=True)
        g_cl, = torch.autograd.grad(cl, sr, retain_graph=True)
        grouped = contrastive_term(pcl.net, sr, pos, neg, layers=cfg.loss.layers, loss=cfg.loss.form,
                                   tau=cfg.loss.tau, grouped=True)
        g_grp, = torch.autograd.grad(grouped, sr)
        rows.append({
            "step": step,
            "ratio_cl_l1": float(g_cl.norm() / g_l1.norm()),
            "cos_cl_l1": float(F.cosine_similarity(g_cl.flatten(), g_l1.flatten(), dim=0)),
            "cos_grouped_running": float(F.cosine_similarity(g_grp.flatten(), g_cl.flatten(), dim=0)),
            "ratio_grouped_running": float(g_grp.norm() / g_cl.norm()),
        })
    summary = {k: statistics.median(float(r[k]) for r in rows) for k in rows[0] if k != "step"}
    return {"run": str(run), "checkpoint_step": at, "rows": rows, "median": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for run in args.runs:
        r = measure(run, args.steps)
        results.append(r)
        m = r["median"]
        print(f"{run.name} (step {r['checkpoint_step']}): |grad L_CL| / |grad L1| {m['ratio_cl_l1']:.1f}, "  # type: ignore[index]
              f"cos(L_CL, L1) {m['cos_cl_l1']:+.3f}; released grouping against running statistics: "  # type: ignore[index]
              f"cos {m['cos_grouped_running']:+.3f}, norm ratio {m['ratio_grouped_running']:.2f}", flush=True)  # type: ignore[index]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
