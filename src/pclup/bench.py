"""The evaluator: PSNR and SSIM of models on test sets, under the papers' protocol.

Protocol (the EDSR/RCAN papers' MATLAB code): HR is mod-cropped to a multiple of the scale; LR is MATLAB's
bicubic ``imresize(HR, 1/s)`` rounded to 8 bits; the model's output is rounded to 8 bits; PSNR and SSIM
are computed on the Y channel (MATLAB's ``rgb2ycbcr``) with ``s`` pixels cropped from every border.
``bicubic`` as a model is MATLAB's bicubic upscale of the same LR.

Degraded variants (``--degrade``, or a set named ``B100-real`` / ``Set14-jpeg30``): the LR is made from
the protocol's bicubic LR or from HR by a fixed, seeded degradation, so the figures can be reproduced:

* ``realistic`` (``-real``): the realistic pipeline of :mod:`pclup.data.degrade` applied to HR, with a
  generator seeded from ``(seed, image name)`` and float64 arithmetic (the same 8-bit LR on every CPU);
* ``jpegQ`` (``-jpegQ``): the bicubic LR compressed by Pillow's JPEG encoder at quality Q (a web photo);
* a ``.toml`` file of pipeline ranges, seeded like ``realistic``.

The library never prints: progress goes through ``on_image``; the CLI renders.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import images
from ._version import __version__
from .datasets import Dataset, check_degrade, precheck_bench, variant_label
from .errors import UsageError
from .imresize import bicubic_downscale_uint8, bicubic_upscale_uint8, mod_crop
from .metrics import SSIM_WINDOW, evaluate_pair

if TYPE_CHECKING:
    from .inference.upscale import Upscaler

BICUBIC = "bicubic"


@dataclass
class BenchResult:
    """Averages of one model on one set at one scale."""

    model: str
    dataset: str
    scale: int
    psnr: float
    ssim: float
    images: int
    seconds: float
    megapixels: float  # output megapixels produced

    @property
    def mp_per_second(self) -> float:
        return self.megapixels / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class ImageResult:
    model: str
    dataset: str
    scale: int
    image: str
    psnr: float
    ssim: float


@dataclass
class Comparison:
    """The crop where the models differ most, for a side-by-side picture."""

    dataset: str
    scale: int
    image: str
    box: tuple[int, int, int, int]  # top, left, height, width in HR pixels
    crops: dict[str, np.ndarray] = field(default_factory=dict)  # label -> (h, w, 3) uint8; "HR" first
    psnr: dict[str, float] = field(default_factory=dict)
    score: float = -1.0


@dataclass
class BenchReport:
    device: str
    results: list[BenchResult]
    per_image: list[ImageResult]
    comparisons: list[Comparison]

    def to_json(self) -> dict[str, object]:
        """The stable JSON schema (see docs/bench.md)."""
        return {
            "pclup_version": __version__,
            "device": self.device,
            "results": [
                {"model": r.model, "dataset": r.dataset, "scale": r.scale, "psnr": r.psnr, "ssim": r.ssim,
                 "images": r.images, "seconds": r.seconds}
                for r in self.results
            ],
            "per_image": [
                {"model": r.model, "dataset": r.dataset, "scale": r.scale, "image": r.image, "psnr": r.psnr,
                 "ssim": r.ssim}
                for r in self.per_image
            ],
        }


def load_hr(path: Path) -> np.ndarray:
    """An HR test image as (H, W, 3) uint8 (gray images such as Set14's bridge become RGB)."""
    image = images.read_image(path)
    pixels = image.pixels
    if pixels.dtype != np.uint8:
        pixels = images.to_uint8(pixels)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels)


def load_pair(path: Path, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hr, lr)`` of one test image under the protocol: HR mod-cropped to ``scale``, LR by MATLAB's bicubic.

    Raises:
        UsageError: an image too small to keep pixels after the ``scale``-pixel border is cut.
    """
    hr = mod_crop(load_hr(path), scale)
    if min(hr.shape[:2]) - 2 * scale < SSIM_WINDOW:
        raise UsageError(
            f"{path}: {hr.shape[1]}x{hr.shape[0]} is too small for x{scale}: SSIM needs "
            f"{SSIM_WINDOW}x{SSIM_WINDOW} pixels after the {scale}-pixel border is cut"
        )
    return hr, bicubic_downscale_uint8(hr, scale)


def degraded_lr(hr: np.ndarray, lr: np.ndarray, scale: int, variant: str, seed: int, key: str) -> np.ndarray:
    """The LR of a degraded variant (see the module docstring) for the image named ``key``: (h, w, 3) uint8.

    ``hr`` is the mod-cropped HR and ``lr`` the protocol's bicubic LR of it.
    """
    import hashlib

    import torch

    from .data.degrade import load_degradation
    from .images.arrays import jpeg

    check_degrade(variant)
    if variant.startswith("jpeg"):
        t = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).unsqueeze(0).double() / 255
        out = jpeg(t, int(variant[4:]))[0]
    else:
        pipeline = load_degradation(variant)
        assert pipeline is not None
        digest = hashlib.blake2b(f"{seed}/{key}".encode(), digest_size=8).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))
        with torch.inference_mode():
            out = pipeline.apply(torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))), scale, g)
    return np.ascontiguousarray(out.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy())


def super_resolve(up: Upscaler | None, lr: np.ndarray, scale: int) -> np.ndarray:
    """``lr`` upscaled by ``up`` (None: MATLAB's bicubic), rounded to 8 bits as the protocol scores it."""
    if up is None:
        return bicubic_upscale_uint8(lr, scale)
    return images.from_tensor(up.upscale_tensor(images.to_tensor(lr)), np.uint8)


def score(up: Upscaler, pairs: Sequence[tuple[np.ndarray, np.ndarray]], scale: int) -> tuple[float, float]:
    """Mean PSNR and SSIM (Y) of one model on a set of ``(hr, lr)`` pairs (:func:`load_pair`), the figures
    :func:`benchmark` reports for it."""
    psnr = ssim = 0.0
    for hr, lr in pairs:
        p, s = evaluate_pair(super_resolve(up, lr, scale), hr, scale)
        psnr += p
        ssim += s
    return psnr / len(pairs), ssim / len(pairs)


def _crop_score(a: np.ndarray, b: np.ndarray, size: int) -> tuple[float, int, int]:
    """Largest mean |a - b| over ``size`` x ``size`` windows (on a coarse grid), and its top-left corner."""
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)
    h, w = diff.shape
    if h < size or w < size:
        return float(diff.mean()), 0, 0
    integral = np.pad(diff.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 4)
    best = (-1.0, 0, 0)
    for top in range(0, h - size + 1, step):
        sums = (
            integral[top + size, size:] - integral[top, size:]
            - integral[top + size, :-size] + integral[top, :-size]
        )
        left = int(np.argmax(sums[::step])) * step
        value = float(sums[left]) / (size * size)
        if value > best[0]:
            best = (value, top, left)
    return best


def benchmark(
    models: Sequence[str],
    sets: Sequence[str],
    scales: Sequence[int],
    *,
    data_dir: str | Path | None = None,
    device: str = "auto",
    precision: str = "fp32",
    tile: int | str = "auto",
    tta: bool = False,
    save_images: Path | None = None,
    compare_crop: int | None = None,
    on_image: Callable[[str, int, int, int], None] | None = None,
    degrade: str | None = None,
    seed: int = 0,
) -> BenchReport:
    """Evaluate every model on every set at every scale.

    Args:
        models: Model specs (see :func:`pclup.weights.load_model`) or ``"bicubic"``. A spec that names a
            model of one scale is evaluated only at that scale; multi-scale specs (variants such as
            ``edsr-s``, super-image repos) at each requested scale.
        sets: Named sets (Set5, Set14, B100, Urban100, Manga109) or folders of HR images.
        scales: Integer scales.
        tile: ``"auto"``, 0 (no tiling) or a tile side in pixels, as a number or text.
        precision: ``fp32`` by default so that figures are comparable; ``auto`` measures what users get.
        save_images: Folder for the SR outputs (``<dir>/<set>/x<s>/<model>/<image>.png``).
        compare_crop: Side in HR pixels of the crops kept for :class:`Comparison` (None: none kept).
        on_image: Called with ``(dataset, scale, done, total)`` after each image.
        degrade: a degraded variant for every set (``realistic``, ``jpegQ`` or a ``.toml`` file; see the
            module docstring); a set named with a variant suffix (``B100-real``) uses its own.
        seed: the seed of the realistic degradations.

    Returns:
        Averages, per-image figures and, with ``compare_crop``, one comparison per set and scale.
    """
    from .inference.upscale import Upscaler, parse_tile
    from .weights import load_model

    tile = parse_tile(tile)
    datasets: list[tuple[Dataset, str | None]] = precheck_bench(models, sets, scales, data_dir, degrade)
    results: list[BenchResult] = []
    per_image: list[ImageResult] = []
    comparisons: list[Comparison] = []
    device_name = "cpu"
    for scale in scales:
        upscalers: dict[str, Upscaler | None] = {}
        for spec in models:
            if spec.lower() == BICUBIC:
                upscalers[BICUBIC] = None
                continue
            loaded = load_model(spec, scale=scale)
            if loaded.scale != scale:
                if len(scales) == 1:
                    raise UsageError(
                        f"model '{spec}' is x{loaded.scale}, not x{scale}: pass -s {loaded.scale}"
                    )
                continue
            upscaler = Upscaler(loaded, device=device, precision=precision, tile=tile, tta=tta)
            device_name = upscaler.torch_device.type
            upscalers[spec] = upscaler
        for ds, variant in datasets:
            set_name = ds.name + (variant_label(variant) if variant else "")
            totals = {name: [0.0, 0.0, 0.0, 0.0] for name in upscalers}  # psnr, ssim, seconds, megapixels
            comparison = Comparison(set_name, scale, "", (0, 0, 0, 0)) if compare_crop else None
            for index, path in enumerate(ds.files):
                hr, lr = load_pair(path, scale)
                if variant:
                    lr = degraded_lr(hr, lr, scale, variant, seed, path.stem)
                outputs: dict[str, np.ndarray] = {}
                for name, up in upscalers.items():
                    start = time.perf_counter()
                    sr = super_resolve(up, lr, scale)
                    seconds = time.perf_counter() - start
                    psnr, ssim = evaluate_pair(sr, hr, scale)
                    t = totals[name]
                    t[0] += psnr
                    t[1] += ssim
                    t[2] += seconds
                    t[3] += sr.shape[0] * sr.shape[1] / 1e6
                    per_image.append(ImageResult(name, set_name, scale, path.stem, psnr, ssim))
                    outputs[name] = sr
                    if save_images is not None:
                        out = save_images / set_name / f"x{scale}" / _safe(name) / f"{path.stem}.png"
                        out.parent.mkdir(parents=True, exist_ok=True)
                        images.write_image(images.Image(pixels=sr, format="PNG"), out)
                if comparison is not None and compare_crop:
                    _update_comparison(comparison, path.stem, hr, lr, scale, outputs, per_image, compare_crop)
                if on_image:
                    on_image(set_name, scale, index + 1, len(ds.files))
            n = len(ds.files)
            for name, (p, s, sec, mp) in totals.items():
                results.append(BenchResult(name, set_name, scale, p / n, s / n, n, sec, mp))
            if comparison is not None and comparison.crops:
                comparisons.append(comparison)
    return BenchReport(device_name, results, per_image, comparisons)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)


def _update_comparison(
    comparison: Comparison,
    image: str,
    hr: np.ndarray,
    lr: np.ndarray,
    scale: int,
    outputs: dict[str, np.ndarray],
    per_image: list[ImageResult],
    size: int,
) -> None:
    """Keep this image's crop if the models (or, with one model, the model and bicubic) differ most here."""
    candidates = dict(outputs)
    if BICUBIC not in candidates:
        candidates[BICUBIC] = bicubic_upscale_uint8(lr, scale)
    names = list(candidates)
    if len(names) < 2:
        return
    # where the two most different outputs differ most: first model vs every other, take the largest
    best = (-1.0, 0, 0)
    ref = candidates[names[-1]] if names[-1] != BICUBIC else candidates[names[0]]
    for name in names:
        if candidates[name] is ref:
            continue
        best = max(best, _crop_score(candidates[name], ref, size))
    score, top, left = best
    if score <= comparison.score:
        return
    size_h, size_w = min(size, hr.shape[0]), min(size, hr.shape[1])
    comparison.image = image
    comparison.score = score
    comparison.box = (top, left, size_h, size_w)
    comparison.crops = {"HR": hr[top : top + size_h, left : left + size_w].copy()}
    order = [BICUBIC] + [n for n in names if n != BICUBIC]
    for name in order:
        comparison.crops[name] = candidates[name][top : top + size_h, left : left + size_w].copy()
    recent = {
        r.model: r.psnr
        for r in per_image
        if r.image == image and r.dataset == comparison.dataset and r.scale == scale
    }
    comparison.psnr = {name: recent.get(name, float("nan")) for name in order}
    if BICUBIC not in recent:
        comparison.psnr[BICUBIC] = evaluate_pair(candidates[BICUBIC], hr, scale)[0]


def compare_grid(comparisons: Sequence[Comparison], zoom: int = 2) -> np.ndarray:
    """A picture: one row per comparison, columns HR, bicubic, each model, labelled with PSNR."""
    from PIL import Image, ImageDraw, ImageFont

    if not comparisons:
        raise UsageError("nothing to compare (no image was evaluated)")
    rows = []
    font = ImageFont.load_default()
    for comp in comparisons:
        tiles = []
        for label, crop in comp.crops.items():
            zoomed = (crop.shape[1] * zoom, crop.shape[0] * zoom)
            tile = Image.fromarray(crop).resize(zoomed, Image.Resampling.NEAREST)
            canvas = Image.new("RGB", (tile.width, tile.height + 28), "white")
            canvas.paste(tile, (0, 28))
            draw = ImageDraw.Draw(canvas)
            short = Path(label).name if Path(label).exists() else label  # a folder's name, not its whole path
            title = label if label == "HR" else f"{short}: {comp.psnr.get(label, float('nan')):.2f} dB"
            draw.text((4, 2), title[:48], fill="black", font=font)
            if label == "HR":
                draw.text((4, 14), f"{comp.dataset} {comp.image} x{comp.scale}", fill="black", font=font)
            tiles.append(np.asarray(canvas))
        gap = np.full((tiles[0].shape[0], 6, 3), 255, np.uint8)
        row = np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)
