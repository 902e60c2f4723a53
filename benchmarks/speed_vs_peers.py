"""Inference speed: pclup against spandrel (RCAN, SwinIR-M) and super-image (EDSR-S), same weights, same input.

Every candidate runs in this one process on the same random weights (copied from the peer's model, so the
networks are identical) and the same input; the runs are interleaved (round-robin) so that load from
other processes falls on all of them alike. Reported: median seconds per image, the ratio peer/pclup
(> 1 means pclup is faster) and the largest output difference from the peer's fp32 result in 1/255 units.

pclup variants:
    fp32-nchw      the network in plain NCHW under inference_mode (what channels_last adds is the difference)
    fp32           Upscaler(precision="fp32"): channels_last + inference_mode (pclup's fp32 default)
    auto           Upscaler(precision="auto") on these random weights: float32 (auto picks bf16 only for
                   packaged models whose measurement passed)
    measured       what ``auto`` runs for the packaged model of this shape where the CPU has native bf16:
                   bf16 with its recorded float32 layers (default-x4 for compact, edsr-s-pcl-x4 for EDSR-S);
                   absent for networks without a packaged model
    bf16           Upscaler(precision="bf16"): bf16 autocast + channels_last, even where not native

Peers run as their documentation shows: ``with torch.no_grad(): model(x)`` in fp32 (their default).

The input is ``--size`` square (64 by default; 256 is the size of a typical tile).

Usage: python benchmarks/speed_vs_peers.py [--repeats 5] [--size 64] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _peers  # noqa: E402
from pclup.device import cpu_has_native_bf16, pick_precision  # noqa: E402
from pclup.inference.precision import keep_fp32  # noqa: E402
from pclup.inference.upscale import Upscaler  # noqa: E402
from pclup.weights import (  # noqa: E402
    LoadedModel,
    canonicalize,
    find_pretrained,
    measured_precision,
    model_from_state_dict,
    super_image_overrides,
)

#: the packaged model whose recorded bf16 settings the "measured" candidate uses, by network
PACKAGED = {"EDSR-S": "edsr-s-pcl-x4", "compact": "default-x4"}


def peers() -> dict[str, tuple[torch.nn.Module, torch.nn.Module, float]]:
    """name -> (peer model, pclup model with the same weights, input multiplier for the peer)."""
    torch.manual_seed(0)
    out = {}
    si = _peers.import_super_image()
    edsr = si.EdsrModel(si.EdsrConfig(scale=4, n_resblocks=16, n_feats=64, res_scale=1)).eval()
    state = canonicalize({f"module.{k}": v for k, v in edsr.state_dict().items()})
    out["EDSR-S x4 (super-image)"] = (
        edsr,
        model_from_state_dict(state, "super-image", super_image_overrides({"res_scale": 1}, "edsr", "")),
        1.0,
    )
    vgg = _peers.import_spandrel_arch("Compact", "SRVGG")
    compact = vgg.SRVGGNetCompact(num_feat=64, num_conv=3, upscale=4, act_type="prelu").eval()
    out["compact x4 (spandrel SRVGGNetCompact; default-x4's shape)"] = (
        compact, model_from_state_dict(dict(compact.state_dict()), "spandrel"), 1.0)
    rcan_mod = _peers.import_spandrel_arch("RCAN")
    rcan = rcan_mod.RCAN(scale=4).eval()
    out["RCAN x4 (spandrel)"] = (rcan, model_from_state_dict(dict(rcan.state_dict()), "spandrel"), 1.0)
    swin_mod = _peers.import_spandrel_arch("SwinIR")
    swin = swin_mod.SwinIR(
        upscale=4, in_chans=3, img_size=48, window_size=8, img_range=1.0, depths=[6] * 6, embed_dim=180,
        num_heads=[6] * 6, mlp_ratio=2, upsampler="pixelshuffle", resi_connection="1conv",
    ).eval()
    out["SwinIR-M x4 (spandrel)"] = (swin, model_from_state_dict(dict(swin.state_dict()), "spandrel"), 1.0)
    return out


def timed(fn, x):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    y = fn(x)
    return time.perf_counter() - start, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=64, help="input side in pixels")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--nets", nargs="+", help="only the networks whose name starts with one of these")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    rows = []
    for name, (peer, ours, _mult) in peers().items():
        if args.nets and not name.startswith(tuple(args.nets)):
            continue
        loaded = LoadedModel(ours, name, "benchmark")
        nchw = ours

        def peer_run(t, peer=peer):  # type: ignore[no-untyped-def]
            with torch.no_grad():
                return peer(t.clone()).clamp(0, 1)

        def nchw_run(t, nchw=nchw):  # type: ignore[no-untyped-def]
            with torch.inference_mode():
                return nchw(t).clamp(0, 1)

        candidates = {
            "peer": peer_run,
            "fp32-nchw": nchw_run,
            "fp32": Upscaler(loaded, device="cpu", precision="fp32", tile=0).upscale_tensor,
            "auto": Upscaler(loaded, device="cpu", precision="auto", tile=0).upscale_tensor,
            "bf16": Upscaler(loaded, device="cpu", precision="bf16", tile=0).upscale_tensor,
        }
        packaged = next((find_pretrained(v) for k, v in PACKAGED.items() if name.startswith(k)), None)
        verdict = measured_precision(packaged.source) if packaged else None
        if verdict is not None and verdict.passes:
            import copy

            measured = LoadedModel(copy.deepcopy(ours), name, "benchmark")
            keep_fp32(measured.model, verdict.fp32_layers)
            candidates["measured"] = Upscaler(measured, device="cpu", precision="bf16", tile=0).upscale_tensor
        times: dict[str, list[float]] = {k: [] for k in candidates}
        outputs = {}
        for k, fn in candidates.items():  # warm-up (and outputs for the accuracy check)
            outputs[k] = timed(fn, x)[1]
        for _ in range(args.repeats):
            for k, fn in candidates.items():
                times[k].append(timed(fn, x)[0])
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "model": name,
            "auto_precision": str(pick_precision("auto", torch.device("cpu"), loaded.arch)).replace("torch.", ""),
            "seconds": med,
            "speedup_vs_peer": {k: med["peer"] / med[k] for k in candidates if k != "peer"},
            "max_diff_vs_peer_255": {k: float((outputs[k] - outputs["peer"]).abs().max() * 255) for k in candidates},
        }
        rows.append(row)
        print(f"\n{name}: input {args.size}x{args.size}, auto = {row['auto_precision']}", flush=True)
        for k in candidates:
            print(
                f"  {k:10s} {med[k]:8.3f} s   peer/this {med['peer'] / med[k]:5.2f}   "
                f"max|diff| {row['max_diff_vs_peer_255'][k]:.4f}/255",
                flush=True,
            )
    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": args.threads,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "repeats": args.repeats,
        "size": args.size,
    }
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print("\n" + json.dumps(meta))


if __name__ == "__main__":
    main()
