"""Choose pclup's compact CPU architecture on measured quality per CPU cost.

Trains a few candidate networks, each at most 1/10 of EDSR-S's convolution MACs per pixel, with the same
plain L1 loop (same batches, same optimiser, same number of steps), then reports for each: Y-channel PSNR on
Set5 and Set14 (border = scale), CPU inference time for a 256x256 LR input (fp32, ``torch.inference_mode``,
median of several runs), convolution MACs per LR pixel (``benchmarks/flops.py``) and parameters.

Data: the HR images of ``<data>/train`` (T91, BSD200, General100); ``<data>`` is ``$PCLUP_DATA`` or
``../shared/data`` relative to the repository. LR images are PIL bicubic downscales (antialiased cubic, close
to but not identical to MATLAB ``imresize``); the same for every candidate and for the test sets, so the
numbers rank candidates but are not paper-comparable figures.

Run (about 40 minutes on two shared cores at 1000 steps)::

    nice -n 10 python benchmarks/compact_selection.py --steps 1000 --out runs/compact_selection.json \
        > runs/compact_selection.log 2>&1

``--probe`` only times a few training steps per candidate (to size ``--steps``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from flops import macs_per_pixel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("PCLUP_DATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


# --------------------------------------------------------------------------------------------- candidates


class FSRCNN(nn.Module):
    """FSRCNN (Dong et al., ECCV 2016), d=56, s=12, m=4, on RGB; the 9x9 transposed convolution upsamples."""

    def __init__(self, scale: int, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, d, 5, padding=2), nn.PReLU(d)]
        layers += [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(d, 3, 9, stride=scale, padding=4, output_padding=scale - 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.deconv(self.body(x))


class PlainCompact(nn.Module):
    """SRVGGNetCompact-style (Real-ESRGAN): 3x3 convs + PReLU, pixel shuffle, nearest-upscaled LR added."""

    def __init__(self, scale: int, n_feats: int = 48, n_convs: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, n_feats, 3, padding=1), nn.PReLU(n_feats)]
        for _ in range(n_convs):
            layers += [nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.PReLU(n_feats)]
        layers += [nn.Conv2d(n_feats, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
        self.body = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


class ResCompact(nn.Module):
    """A small EDSR: head conv, ResBlocks (conv-ReLU-conv), pixel shuffle, bilinear-upscaled LR added."""

    def __init__(self, scale: int, n_feats: int = 48, n_blocks: int = 3) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(n_feats, n_feats, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(n_feats, n_feats, 3, padding=1),
            )
            for _ in range(n_blocks)
        )
        self.tail = nn.Sequential(nn.Conv2d(n_feats, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        f = h = self.head(x)
        for block in self.blocks:
            h = h + block(h)
        up = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.tail(h + f) + up


CANDIDATES: dict[str, tuple[str, Callable[[int], nn.Module]]] = {
    "fsrcnn": ("FSRCNN d56 s12 m4, RGB, 9x9 deconv", lambda s: FSRCNN(s)),
    "plain48x6": ("plain 3x3 + PReLU, 48 ch, 6 body convs, nearest skip", lambda s: PlainCompact(s, 48, 6)),
    "res48x3": ("3 ResBlocks (ReLU), 48 ch, bilinear skip", lambda s: ResCompact(s, 48, 3)),
    # second round: the plain design at the same budget, narrower-deeper and wider-shallower
    "plain32x12": (
        "plain 3x3 + PReLU, 32 ch, 12 body convs, nearest skip",
        lambda s: PlainCompact(s, 32, 12),
    ),
    "plain64x3": ("plain 3x3 + PReLU, 64 ch, 3 body convs, nearest skip", lambda s: PlainCompact(s, 64, 3)),
}


# -------------------------------------------------------------------------------------------------- data


def load_rgb(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB")


def bicubic_pair(hr: Image.Image, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR cropped to a multiple of ``scale``, its PIL-bicubic downscale), both HxWx3 uint8."""
    w, h = hr.size
    w, h = w - w % scale, h - h % scale
    hr = hr.crop((0, 0, w, h))
    lr = hr.resize((w // scale, h // scale), Image.BICUBIC)
    return np.asarray(hr), np.asarray(lr)


class PatchSampler:
    """Random aligned LR/HR patches with flips and 90-degree rotations, from a fixed seed."""

    def __init__(self, root: Path, scale: int, lr_patch: int, seed: int) -> None:
        self.pairs: list[tuple[Tensor, Tensor]] = []
        for path in sorted(root.glob("*/*")):
            if path.suffix.lower() not in {".png", ".jpg", ".jpeg", ".bmp"}:
                continue
            hr, lr = bicubic_pair(load_rgb(path), scale)
            if lr.shape[0] < lr_patch or lr.shape[1] < lr_patch:
                continue
            hr_t, lr_t = (torch.from_numpy(a.copy()).permute(2, 0, 1) for a in (hr, lr))
            self.pairs.append((hr_t, lr_t))
        self.scale, self.lr_patch = scale, lr_patch
        self.gen = torch.Generator().manual_seed(seed)

    def _int(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.gen))

    def batch(self, size: int) -> tuple[Tensor, Tensor]:
        s, p = self.scale, self.lr_patch
        lrs, hrs = [], []
        for _ in range(size):
            hr, lr = self.pairs[self._int(len(self.pairs))]
            y, x = self._int(lr.shape[1] - p + 1), self._int(lr.shape[2] - p + 1)
            lp = lr[:, y : y + p, x : x + p]
            hp = hr[:, y * s : (y + p) * s, x * s : (x + p) * s]
            k = self._int(8)
            if k & 4:
                lp, hp = lp.flip(-1), hp.flip(-1)
            lp, hp = torch.rot90(lp, k % 4, (1, 2)), torch.rot90(hp, k % 4, (1, 2))
            lrs.append(lp)
            hrs.append(hp)
        return torch.stack(lrs).float() / 255, torch.stack(hrs).float() / 255


# ----------------------------------------------------------------------------------------------- metrics


def y_channel(img: Tensor) -> Tensor:
    """BT.601 luma on the 16-235 scale (MATLAB ``rgb2ycbcr``) of a 3xHxW image in [0, 255]."""
    r, g, b = img[0], img[1], img[2]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def psnr_y(sr: Tensor, hr: Tensor, border: int) -> float:
    """PSNR on Y of two 3xHxW images in [0, 255] (SR already rounded), ``border`` pixels cut on each side."""
    a = y_channel(sr.double())[border:-border, border:-border]
    b = y_channel(hr.double())[border:-border, border:-border]
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(255.0**2 / mse)


def evaluate(model: nn.Module | None, root: Path, scale: int) -> float:
    """Mean Y-PSNR over a test folder; ``model=None`` is the bicubic (PIL) upscale."""
    values = []
    for path in sorted(root.glob("*.png")):
        hr_np, lr_np = bicubic_pair(load_rgb(path), scale)
        hr = torch.from_numpy(hr_np.copy()).permute(2, 0, 1).double()
        if model is None:
            up = Image.fromarray(lr_np).resize((hr_np.shape[1], hr_np.shape[0]), Image.BICUBIC)
            sr = torch.from_numpy(np.asarray(up).copy()).permute(2, 0, 1).double()
        else:
            lr = torch.from_numpy(lr_np.copy()).permute(2, 0, 1).float()[None] / 255
            with torch.inference_mode():
                out = model(lr)[0]
            sr = (out.clamp(0, 1) * 255).round().double()
        values.append(psnr_y(sr, hr, scale))
    return statistics.fmean(values)


def cpu_time_ms(model: nn.Module, size: int = 256, runs: int = 7) -> float:
    """Median wall time of one forward pass on a 1x3xsize x size input, fp32, inference mode."""
    model.eval()
    x = torch.rand(1, 3, size, size)
    times = []
    with torch.inference_mode():
        for i in range(runs + 2):
            t0 = time.perf_counter()
            model(x)
            if i >= 2:  # two warm-up runs
                times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


# ------------------------------------------------------------------------------------------------- train


def train(
    model: nn.Module, sampler: PatchSampler, steps: int, batch: int, lr: float, log: Callable[[str], None]
) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.01)
    model.train()
    t0 = time.perf_counter()
    running = 0.0
    for step in range(1, steps + 1):
        lr_b, hr_b = sampler.batch(batch)
        loss = F.l1_loss(model(lr_b), hr_b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if step % 250 == 0 or step == steps:
            n = 250 if step % 250 == 0 else step % 250
            log(f"  step {step}/{steps}  L1 {running / n:.5f}  {time.perf_counter() - t0:.0f}s")
            running = 0.0
    return time.perf_counter() - t0


def edsr_s(scale: int) -> nn.Module:
    from pclup.models.edsr import EDSR, EDSRConfig

    return EDSR(EDSRConfig(scale=scale))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr-patch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--candidates",
        default=None,
        help="comma-separated names (default: fsrcnn,plain48x6,res48x3; with --time-only all and edsr_s)",
    )
    parser.add_argument("--probe", action="store_true", help="only time 20 training steps per candidate")
    parser.add_argument(
        "--time-only",
        action="store_true",
        help="only re-measure inference times (untrained weights), round-robin, into --out's 'timing'",
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs per model with --time-only")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for --time-only (0: default)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, flush=True)  # noqa: T201

    root = data_root()
    scale = args.scale
    if args.time_only:
        return time_only(args, log)
    log(f"data {root}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    sampler = PatchSampler(root / "train", scale, args.lr_patch, args.seed)
    log(f"{len(sampler.pairs)} training images")
    ref = edsr_s(scale)
    ref_macs = macs_per_pixel(ref)
    results: dict[str, object] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs".strip(),
        "cpu_model": _cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg(),
        "settings": vars(args) | {"out": str(args.out)},
        "edsr_s": {
            "macs_per_lr_pixel": ref_macs,
            "params": sum(p.numel() for p in ref.parameters()),
            "cpu_ms_256": None if args.probe else cpu_time_ms(ref, runs=3),
        },
        "bicubic": {} if args.probe else {
            "set5": evaluate(None, root / "Set5", scale),
            "set14": evaluate(None, root / "Set14", scale),
        },
        "candidates": {},
    }
    log(f"EDSR-S x{scale}: {ref_macs:,.0f} MAC/LR px; budget {ref_macs / 10:,.0f}")
    for name in (args.candidates or "fsrcnn,plain48x6,res48x3").split(","):
        desc, make = CANDIDATES[name]
        torch.manual_seed(args.seed)
        model = make(scale)
        macs = macs_per_pixel(model)
        params = sum(p.numel() for p in model.parameters())
        ratio = ref_macs / macs
        log(f"{name}: {desc}; {params:,} params, {macs:,.0f} MAC/LR px ({ratio:.1f}x fewer than EDSR-S)")
        assert macs <= ref_macs / 10, f"{name} is over the budget"
        if args.probe:
            sampler.gen.manual_seed(args.seed)
            secs = train(model, sampler, 20, args.batch, args.lr, lambda _m: None)
            log(f"  {secs / 20 * 1000:.0f} ms/step")
            continue
        sampler.gen.manual_seed(args.seed)  # every candidate sees the same batches
        secs = train(model, sampler, args.steps, args.batch, args.lr, log)
        model.eval()
        entry = {
            "description": desc,
            "params": params,
            "macs_per_lr_pixel": macs,
            "train_seconds": secs,
            "set5": evaluate(model, root / "Set5", scale),
            "set14": evaluate(model, root / "Set14", scale),
            "cpu_ms_256": cpu_time_ms(model),
            "load_average_after": os.getloadavg(),
        }
        results["candidates"][name] = entry  # type: ignore[index]
        log(f"  {json.dumps(entry)}")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))
    log(json.dumps(results, indent=2))
    return 0


def time_only(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    """Inference time of every candidate and EDSR-S, round-robin so that load from other processes hits all.

    Each round runs every model once on the same 1x3x256x256 input; the first two rounds are warm-up.
    Written to ``--out`` under ``timing_<threads>t``.
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.candidates.split(",") if args.candidates else [*CANDIDATES, "edsr_s"]
    models = {n: (edsr_s(args.scale) if n == "edsr_s" else CANDIDATES[n][1](args.scale)).eval() for n in names}
    x = torch.rand(1, 3, 256, 256)
    times: dict[str, list[float]] = {name: [] for name in models}
    load_before = os.getloadavg()
    with torch.inference_mode():
        for r in range(args.runs + 2):
            for name, model in models.items():
                if name == "edsr_s" and r >= 5:  # about 10 s a run: five are enough
                    continue
                t0 = time.perf_counter()
                model(x)
                if r >= 2:
                    times[name].append(time.perf_counter() - t0)
    timing = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "median_ms_256": {name: statistics.median(t) * 1000 for name, t in times.items()},
        "min_ms_256": {name: min(t) * 1000 for name, t in times.items()},
        "runs": {name: len(t) for name, t in times.items()},
    }
    log(json.dumps(timing, indent=2))
    if args.out:
        results = json.loads(args.out.read_text()) if args.out.exists() else {}
        key = f"timing_{torch.get_num_threads()}t" + (f"_{'-'.join(names)}" if args.candidates else "")
        results[key] = timing
        args.out.write_text(json.dumps(results, indent=2))
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
