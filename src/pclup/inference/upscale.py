"""Upscale tensors, images and files with any loaded model.

``Upscaler`` holds a model on its device at its precision; ``upscale_tensor`` runs it (tiled, with the
x8 self-ensemble if asked), ``upscale_image`` handles what images bring along (gray, alpha, 16 bits,
metadata), ``upscale_file`` reads, upscales and writes one file atomically.

Output scales other than the model's: the model runs as many times as it takes to reach at least the
requested size (once for any factor up to its own scale), then an antialiased bicubic resize brings the
result to exactly ``round(W * s) x round(H * s)``. ``-s 3`` with a x4 model is one model pass and a 3/4
downscale; ``-s 8`` with a x4 model is two passes (x16) and a 1/2 downscale. A x1 model (restoration:
denoise, deblur) runs once, at the input size, and the resize does all the scaling.

The upscaled image is held in host memory as float32 (12 bytes a pixel for colour): an output that
could not fit in this computer's memory and swap together is refused before any work is done.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import images
from .._fs import libc_trim
from ..device import pick_device, precision_name, to_channels_last
from ..errors import (
    ImageReadError,
    ImageWriteError,
    IncompatibleCheckpointError,
    PclupError,
    UsageError,
    is_out_of_memory,
)
from ..models.registry import colour_channels
from ..weights import LoadedModel
from .batch import upscaled_size
from .media import MIN_TILE, parse_tile
from .tiling import auto_tile, bytes_per_pixel, gib, not_enough_memory, run_tiled

Progress = Callable[[int, int], None]


def _tta_transforms() -> list[tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]]:
    """The 8 flips/rotations of the dihedral group, each with its inverse."""
    out: list[tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = []
    for k in range(4):
        for flip in (False, True):

            def fwd(x: Tensor, k: int = k, flip: bool = flip) -> Tensor:
                x = torch.flip(x, dims=(-1,)) if flip else x
                return torch.rot90(x, k, dims=(-2, -1))

            def inv(y: Tensor, k: int = k, flip: bool = flip) -> Tensor:
                y = torch.rot90(y, -k, dims=(-2, -1))
                return torch.flip(y, dims=(-1,)) if flip else y

            out.append((fwd, inv))
    return out


@dataclass
class Upscaler:
    """A model ready to upscale, on a device, at a precision.

    Attributes:
        loaded: The model and its source (see :func:`pclup.weights.load_model`).
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``auto``, ``fp32``, ``fp16`` or ``bf16`` (see :mod:`pclup.device`).
        tile: ``"auto"`` (sized from free memory, halved on out-of-memory), 0 (whole image), or a side
            in input pixels.
        tile_overlap: Input pixels shared by neighbouring tiles.
        tta: Average the x8 flip/rotate self-ensemble (8 times slower, slightly better).
        channels_last: Run convolutions in NHWC memory layout (faster on CPUs and recent GPUs).
    """

    loaded: LoadedModel
    device: str | None = "auto"
    precision: str = "auto"
    tile: int | str = "auto"
    tile_overlap: int = 16
    tta: bool = False
    channels_last: bool = True
    torch_device: torch.device = field(init=False)
    dtype: torch.dtype = field(init=False)
    fp32_layers: tuple[str, ...] = field(init=False, default=())
    _bytes_per_px: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.tile = parse_tile(self.tile)
        if self.tile_overlap < 0:
            raise UsageError("--tile-overlap must be >= 0")
        channels = colour_channels(self.loaded.model.config)
        if channels not in (1, 3):
            raise IncompatibleCheckpointError(
                f"{self.loaded.name} takes {channels}-channel images; pclup upscales with 3-channel (RGB) "
                "or 1-channel (gray) models"
            )
        self.torch_device = pick_device(self.device)
        from .precision import auto_precision, keep_fp32

        self.dtype, self.fp32_layers = auto_precision(self.precision, self.torch_device, self.loaded)
        model = self.loaded.model.eval().to(self.torch_device)
        keep_fp32(model, self.fp32_layers)
        if self.channels_last and self.torch_device.type != "mps":
            model = to_channels_last(model)
        self.model = model

    @property
    def scale(self) -> int:
        return self.loaded.scale

    @property
    def precision_name(self) -> str:
        return precision_name(self.dtype)

    def describe(self) -> str:
        """One line: model, device, precision, tiling."""
        tile = "auto" if self.tile == "auto" else ("off" if not self.tile else str(self.tile))
        kept = f" (fp32: {', '.join(self.fp32_layers)})" if self.fp32_layers else ""
        return (
            f"{self.loaded.name} ({self.loaded.arch.name} x{self.scale}) on {self.torch_device.type}, "
            f"{self.precision_name}{kept}"
            f", tile {tile}{', tta x8' if self.tta else ''}"
        )

    # --- tensors -------------------------------------------------------------------------------------

    def _forward(self, x: Tensor, *, inference: bool = False) -> Tensor:
        """The network on one tile. Its output is an ordinary tensor that callers may update in place,
        unless ``inference``: then an inference tensor (no copy), for callers inside inference mode."""
        if self.channels_last and self.torch_device.type != "mps":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.dtype == torch.float32:
                y = self.model(x)
            else:
                with torch.autocast(self.torch_device.type, dtype=self.dtype):
                    y = self.model(x)
        y = y.float()  # in the network's layout (channels-last on CPUs): nothing reads it in another order
        return y.clone() if y.is_inference() and not inference else y

    def tile_for(self, h: int, w: int) -> int | None:
        """The tile side used for an ``h`` x ``w`` input: None when the whole image is one tile."""
        if self.tile == "auto":
            if self._bytes_per_px is None:
                self._bytes_per_px = bytes_per_pixel(self.model, self.torch_device)
            multiple = max(8, self.loaded.arch.size_multiple)
            side = auto_tile(self._bytes_per_px, self.torch_device, multiple=multiple)
            return None if side >= max(h, w) else side
        return int(self.tile) or None

    def run_model(
        self, x: Tensor, progress: Progress | None = None, sink: Callable[[int, Tensor], None] | None = None
    ) -> Tensor:
        """One pass of the model over ``x`` (``(1, C, H, W)`` float32 CPU, [0, 1]) with tiling and TTA.

        Out-of-memory halves the tile and starts the pass again, down to 16 pixels. With a ``sink`` (no
        TTA), the output goes to it band by band (see :func:`~pclup.inference.tiling.run_tiled`) and an
        empty tensor is returned.
        """
        _, _, h, w = x.shape
        tile = self.tile_for(h, w)

        def one_pass(x: Tensor, step: Progress | None) -> Tensor:
            out = run_tiled(self._forward, x, self.scale, tile, self.tile_overlap, self.torch_device, step)
            assert out is not None
            return out

        while True:
            try:
                if sink is not None and not self.tta:
                    # the bands and the sink's work in inference mode too: the tiles need no copy out of it
                    with torch.inference_mode():
                        run_tiled(partial(self._forward, inference=True), x, self.scale, tile,
                                  self.tile_overlap, self.torch_device, progress, sink=sink)
                    return x.new_empty(0)
                if not self.tta:
                    return one_pass(x, progress)
                acc = None
                transforms = _tta_transforms()
                for n, (fwd, inv) in enumerate(transforms):
                    step = None if progress is None else (lambda d, t, n=n: progress(n * t + d, 8 * t))
                    y = inv(one_pass(fwd(x), step))
                    acc = y if acc is None else acc.add_(y)
                assert acc is not None
                return acc.div_(len(transforms))
            except Exception as e:  # noqa: BLE001 - only out-of-memory is retried
                if not is_out_of_memory(e):
                    raise
                if self.torch_device.type == "cuda":
                    torch.cuda.empty_cache()
                side = tile or max(h, w)
                if side // 2 < MIN_TILE:
                    raise PclupError(
                        f"out of memory on {self.torch_device.type} even with {side}-pixel tiles"
                    ) from None
                tile = side // 2
                self.tile = tile  # remember for the next image

    def output_scale(self, scale: float | None) -> float:
        """``scale``, or the model's when None; a UsageError unless it is a number >= 1."""
        scale = float(scale or self.scale)
        if not (scale >= 1 and math.isfinite(scale)):
            raise UsageError(f"--scale {scale} must be a number >= 1")
        return scale

    def passes(self, scale: float) -> int:
        """How many times the model runs for an output ``scale``: enough to reach it, at least once."""
        if self.scale == 1:
            return 1
        return max(1, math.ceil(math.log(scale) / math.log(self.scale) - 1e-9))

    def upscale_tensor(
        self, x: Tensor, scale: float | None = None, progress: Progress | None = None
    ) -> Tensor:
        """Upscale ``x`` by ``scale`` (default: the model's).

        Args:
            x: ``(1, C, H, W)`` float32 in [0, 1]; a 1-channel (gray) model upscales each channel alone.
            scale: Output factor, >= 1; the model runs ceil(log(scale)/log(model scale)) times (at least
                once; once for a x1 model), then the result is resized to exactly
                ``round(H*scale) x round(W*scale)``.
            progress: ``(done, total)`` over the tiles of each pass.

        Returns:
            ``(1, C, round(H*scale), round(W*scale))`` float32 on the CPU, clamped to [0, 1].

        Raises:
            PclupError: the output is too large for this computer's memory (checked before any work).
        """
        if colour_channels(self.loaded.model.config) == 1 and x.shape[1] > 1:
            planes = [self.upscale_tensor(x[:, i : i + 1], scale, progress) for i in range(x.shape[1])]
            return torch.cat(planes, 1)
        scale = self.output_scale(scale)
        _, c, h, w = x.shape
        target = upscaled_size(h, w, scale)
        passes = self.passes(scale)
        _check_host_memory(c, (h, w), self.scale, passes, target)
        y = x.float().cpu()
        for _ in range(passes):
            y = self.run_model(y, progress).clamp_(0, 1)
        if tuple(y.shape[-2:]) != target:
            y = resize(y, target)
        return y


def _check_host_memory(
    c: int, size: tuple[int, int], model_scale: int, passes: int, target: tuple[int, int]
) -> None:
    """Refuse an output whose float32 buffers could never fit in this computer's RAM and swap together.

    The peak is the last model pass's output with, alongside it, that pass's input or the resized result.
    """
    h, w = size[0] * model_scale ** (passes - 1), size[1] * model_scale ** (passes - 1)
    oh, ow = h * model_scale, w * model_scale
    resized = target[0] * target[1] if (oh, ow) != target else 0
    _refuse_if_too_large(target, 4 * c * (oh * ow + max(h * w, resized)))


def _refuse_if_too_large(target: tuple[int, int], need: int) -> None:
    """Refuse an output of ``target`` (h, w) whose buffers (``need`` bytes) exceed RAM and swap together."""
    have = psutil.virtual_memory().total + psutil.swap_memory().total
    if need > have:
        raise PclupError(
            f"the output, {target[1]}x{target[0]} pixels, is too large: upscaling to it needs about "
            f"{gib(need)} of memory, more than this computer's {gib(have)} of memory and swap"
        )


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Antialiased bicubic resize of ``(1, C, H, W)`` float to ``size`` (h, w), clamped to [0, 1]."""
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)


# --- images --------------------------------------------------------------------------------------------


def upscale_image(
    upscaler: Upscaler, image: images.Image, scale: float | None = None, progress: Progress | None = None
) -> images.Image:
    """Upscale a decoded image: colour through the model, alpha on its own path, metadata kept.

    Gray images go through an RGB model as RGB and come back gray (a gray model upscales each colour
    channel alone); 16-bit images are processed at 16-bit
    precision and stay 16-bit. Under fully transparent pixels the colour is first filled in from visible
    neighbours, so that no dark fringe bleeds into the edge of the visible area.
    """
    pixels = image.pixels
    if image.alpha is not None:
        pixels = images.prepare_rgb_for_alpha(pixels, image.alpha)
    rgb_model = colour_channels(upscaler.loaded.model.config) == 3
    x = images.to_tensor(pixels, expand_gray=rgb_model)
    if _direct(upscaler, pixels, scale):
        # the common case (one pass at the model's own scale, colour, no TTA): the model's output goes
        # straight into the integer output band by band, never whole in float32 (4 times its size)
        h, w, s = pixels.shape[0], pixels.shape[1], upscaler.scale
        tile = upscaler.tile_for(h, w)
        band = h if tile is None else min(h, tile + 2 * upscaler.tile_overlap)
        # the integer output, one band of float32 output rows, the float32 input
        need = pixels.itemsize * 3 * h * s * w * s + 12 * band * s * w * s + 12 * h * w
        _refuse_if_too_large((h * s, w * s), need)
        out = np.empty((h * s, w * s, 3), pixels.dtype)

        def sink(top: int, rows: Tensor) -> None:
            images.quantize_into(rows, out[top : top + rows.shape[2]])

        upscaler.run_model(x.float().cpu(), progress, sink=sink)
    else:
        y = upscaler.upscale_tensor(x, scale, progress)
        out = images.from_tensor(y, pixels.dtype, channels=pixels.shape[2])
    alpha = None if image.alpha is None else images.upscale_alpha(image.alpha, out.shape[0], out.shape[1])
    return dataclasses.replace(image, pixels=out, alpha=alpha)


def _direct(upscaler: Upscaler, pixels: np.ndarray, scale: float | None) -> bool:
    """Whether :func:`upscale_image` can write the model's output straight into the integer image: one
    pass at the model's own scale, a colour image through a colour model, no TTA."""
    return (
        not upscaler.tta
        and upscaler.output_scale(scale) == upscaler.scale
        and upscaler.scale > 1
        and pixels.ndim == 3
        and pixels.shape[2] == 3
        and colour_channels(upscaler.loaded.model.config) == 3
    )


@dataclass
class FileResult:
    """What happened to one input file."""

    input: Path
    output: Path | None
    status: str  # "ok", "skipped", "failed"
    error: str | None = None
    size: tuple[int, int] | None = None  # (w, h) in
    out_size: tuple[int, int] | None = None  # (w, h) out
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the output format could not hold

    def to_json(self) -> dict[str, Any]:
        """This result as the ``files`` entries of ``pclup upscale --json`` show it."""
        return {
            "input": str(self.input),
            "output": str(self.output) if self.output else None,
            "status": self.status,
            "error": self.error,
            "size": list(self.size) if self.size else None,
            "output_size": list(self.out_size) if self.out_size else None,
            "seconds": round(self.seconds, 4),
            "notes": self.notes,
        }


def upscale_file(
    upscaler: Upscaler,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    scale: float | None = None,
    overwrite: bool = False,
    quality: int = 95,
    progress: Progress | None = None,
    png_level: int | None = None,
) -> FileResult:
    """Read ``src``, upscale it, write ``dst`` atomically. Errors of this file are returned, not raised.

    An existing ``dst`` is skipped unless ``overwrite``, also one that another program creates while
    this one works (see :func:`pclup.images.write_image`); ``dst`` is never ``src``. Missing folders
    above ``dst`` are created. What ``dst``'s format could not hold (alpha, 16 bits...) is in the
    result's ``notes``.
    """
    step = upscale_file_pending(upscaler, src, dst, scale=scale, overwrite=overwrite, quality=quality,
                                progress=progress, png_level=png_level)
    return step if isinstance(step, FileResult) else step.finish()


@dataclass
class PendingWrite:
    """An upscaled image not yet written: :meth:`finish` encodes and writes it (in any thread: the image
    encoders release the GIL, so a batch encodes one file while the network works on the next)."""

    src: Path
    dst: Path
    image: images.Image
    size: tuple[int, int]  # (w, h) in
    start: float
    quality: int
    overwrite: bool
    png_level: int | None

    @property
    def nbytes(self) -> int:
        alpha = self.image.alpha
        return int(self.image.pixels.nbytes) + (0 if alpha is None else int(alpha.nbytes))

    def finish(self) -> FileResult:
        """Write the image; the file's result (its time counts from the start of its upscale)."""
        src, dst = self.src, self.dst
        try:
            notes = images.write_image(self.image, dst, quality=self.quality, overwrite=self.overwrite,
                                       parents=True, png_level=self.png_level)
        except FileExistsError:
            return FileResult(src, dst, "skipped", f"{dst} exists (use --overwrite)",
                              seconds=time.perf_counter() - self.start)
        except PclupError as e:
            message = str(e) if isinstance(e, ImageWriteError) else f"cannot write {dst}: {e}"
            return FileResult(src, None, "failed", message, seconds=time.perf_counter() - self.start)
        except OSError as e:
            return FileResult(src, None, "failed", f"{dst}: {e.strerror or e}",
                              seconds=time.perf_counter() - self.start)
        except Exception as e:  # noqa: BLE001 - out of memory fails this file only
            if not is_out_of_memory(e):
                raise
            oh, ow = self.image.pixels.shape[:2]
            return FileResult(src, None, "failed", f"cannot write {dst}: {not_enough_memory((oh, ow))}",
                              seconds=time.perf_counter() - self.start)
        oh, ow = self.image.pixels.shape[:2]
        # the pixels can go before the result is reported
        self.image = dataclasses.replace(self.image, pixels=self.image.pixels[:0], alpha=None)
        return FileResult(src, dst, "ok", None, self.size, (ow, oh), time.perf_counter() - self.start, notes)


def upscale_file_pending(
    upscaler: Upscaler,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    scale: float | None = None,
    overwrite: bool = False,
    quality: int = 95,
    progress: Progress | None = None,
    png_level: int | None = None,
) -> FileResult | PendingWrite:
    """:func:`upscale_file` up to the writing: the result of a file that failed or was skipped, else the
    upscaled image with where it goes."""
    start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        return FileResult(src, dst, "failed", f"{dst}: the output would overwrite the input")
    exists = FileResult(src, dst, "skipped", f"{dst} exists (use --overwrite)")
    if os.path.lexists(dst) and not overwrite:
        return exists
    size = None
    try:
        image = images.read_image(src)
        h, w = image.pixels.shape[:2]
        size = upscaled_size(h, w, upscaler.output_scale(scale))
        result = upscale_image(upscaler, image, scale, progress)
        del image
        trim = libc_trim()
        if trim is not None:  # the network's freed buffers back to the system before the encoder's come
            trim()
    except PclupError as e:  # read errors name their file; name it for the others
        message = str(e) if isinstance(e, (ImageReadError, ImageWriteError)) else f"cannot upscale {src}: {e}"
        return FileResult(src, None, "failed", message, seconds=time.perf_counter() - start)
    except OSError as e:
        message = f"{src}: {e.strerror or e}"
        return FileResult(src, None, "failed", message, seconds=time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001 - out of memory fails this file only
        if not is_out_of_memory(e) or size is None:
            raise
        message = f"cannot upscale {src}: {not_enough_memory(size)}"
        return FileResult(src, None, "failed", message, seconds=time.perf_counter() - start)
    return PendingWrite(src, dst, result, (w, h), start, quality, overwrite, png_level)
