"""Tiled inference: any image size on any device, with no visible seams.

The whole image stays in host memory; only one tile at a time goes to the device. Tiles overlap by
``overlap`` input pixels. In the middle half of each overlap the two tiles' outputs are cross-faded with
weights that sum to one (a "partition of unity", so no weight buffer is needed); the outer quarter of the
overlap on each side is not used at all: there a tile's output is least like the untiled result, since
the network saw no context beyond the tile's edge.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import torch
from torch import Tensor, nn

from ..errors import PclupError, is_out_of_memory
from ..models.registry import colour_channels


@dataclass(frozen=True)
class Span:
    """One tile along one axis: input pixels ``[start, stop)``."""

    start: int
    stop: int


def _run_in_bands(
    forward: Callable[[Tensor], Tensor], x: Tensor, scale: int, rows: list[Span], cols: list[Span],
    device: torch.device, progress: Callable[[int, int], None] | None, sink: Callable[[int, Tensor], None],
) -> None:
    """:func:`run_tiled` with a ``sink``: one row of tiles at a time into a band buffer; the part of the band
    the next row of tiles does not reach goes to the sink, the rest is carried into the next band."""
    _, c, _, w = x.shape
    col_weights = [axis_weights(cols, j, scale) for j in range(len(cols))]
    total, done = len(rows) * len(cols), 0
    top = 0  # first output row not yet handed over
    carry: Tensor | None = None  # accumulated rows [top, rows[i].stop * scale) from earlier tile rows
    for i, r in enumerate(rows):
        # channels-last, the layout the network's output comes in on CPUs: the weighted add reads both
        # in order, and the band's rows are already in the (H, W, C) order of the integer image
        band = torch.empty(1, c, r.stop * scale - top, w * scale, dtype=torch.float32,
                           memory_format=torch.channels_last).zero_()
        if carry is not None:
            band[:, :, : carry.shape[2]] = carry
        row_weight = axis_weights(rows, i, scale)[:, None]
        offset = r.start * scale - top
        for j, col in enumerate(cols):
            piece = forward(x[:, :, r.start : r.stop, col.start : col.stop].to(device)).float().cpu()
            weight = row_weight * col_weights[j][None, :]
            in_place = not piece.is_inference() or torch.is_inference_mode_enabled()
            piece = piece.mul_(weight) if in_place else piece * weight
            band[:, :, offset:, col.start * scale : col.stop * scale] += piece
            done += 1
            if progress:
                progress(done, total)
        final = (rows[i + 1].start * scale if i + 1 < len(rows) else r.stop * scale) - top
        sink(top, band[:, :, :final])
        carry = band[:, :, final:].clone() if final < band.shape[2] else None
        top += final


def plan_axis(length: int, tile: int, overlap: int) -> list[Span]:
    """Tiles covering ``[0, length)``, each ``tile`` long, spread evenly so that neighbours share at least
    ``overlap`` pixels (``overlap`` is capped at half a tile).

    >>> plan_axis(10, 4, 2)
    [Span(start=0, stop=4), Span(start=2, stop=6), Span(start=4, stop=8), Span(start=6, stop=10)]
    """
    if tile >= length:
        return [Span(0, length)]
    overlap = min(overlap, tile // 2)
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    starts = [round(i * (length - tile) / (n - 1)) for i in range(n)]
    return [Span(s, s + tile) for s in starts]


def _transitions(spans: list[Span], scale: int) -> list[tuple[float, float]]:
    """(centre, half width) of the cross-fade between each tile and the next, in output pixels.

    Each centre sits in the middle of the two tiles' overlap; the half width is a quarter of the overlap,
    less where that would make two cross-fades touch, so no pixel is ever shared by three tiles.
    """
    centres = [(spans[i + 1].start + spans[i].stop) * scale / 2 for i in range(len(spans) - 1)]
    out = []
    for i, c in enumerate(centres):
        hw = (spans[i].stop - spans[i + 1].start) * scale / 4
        if i > 0:
            hw = min(hw, (c - centres[i - 1]) / 2)
        if i + 1 < len(centres):
            hw = min(hw, (centres[i + 1] - c) / 2)
        out.append((c, max(hw, 0.0)))
    return out


def axis_weights(spans: list[Span], index: int, scale: int) -> Tensor:
    """Output-space blend weights of tile ``index`` along one axis (length ``(stop - start) * scale``).

    The weights of all tiles sum to one at every output pixel.
    """
    span = spans[index]
    pos = torch.arange((span.stop - span.start) * scale, dtype=torch.float32) + span.start * scale + 0.5
    fades = _transitions(spans, scale)
    w = torch.ones_like(pos)
    if index > 0:
        w = w * _ramp(pos, *fades[index - 1])
    if index + 1 < len(spans):
        w = w * (1 - _ramp(pos, *fades[index]))
    return w


def _ramp(pos: Tensor, centre: float, half_width: float) -> Tensor:
    """0 before ``centre - half_width``, 1 after ``centre + half_width``, linear in between."""
    if half_width <= 0:
        return (pos >= centre).float()
    return ((pos - (centre - half_width)) / (2 * half_width)).clamp(0, 1)


def run_tiled(
    forward: Callable[[Tensor], Tensor],
    x: Tensor,
    scale: int,
    tile: int | None,
    overlap: int,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
    sink: Callable[[int, Tensor], None] | None = None,
) -> Tensor | None:
    """Apply ``forward`` (an x``scale`` network) to ``x`` tile by tile.

    Args:
        forward: ``(1, C, h, w)`` on ``device`` -> ``(1, C, h*scale, w*scale)``.
        x: ``(1, C, H, W)`` float32 on the CPU (stays there).
        scale: The network's integer scale.
        tile: Tile side in input pixels; None or >= the image: one pass over the whole image.
        overlap: Input pixels shared by neighbouring tiles.
        device: Where ``forward`` runs; tiles are moved there one at a time.
        progress: Called with ``(tiles done, tiles in all)`` after each tile.
        sink: instead of returning the output, hand it over band by band, top to bottom, as soon as no
            later tile touches it: ``sink(top, rows)`` with ``rows`` ``(1, C, n, W*scale)`` float32 output
            rows ``top .. top + n - 1``. Only one row of tiles (plus its overlap) is held in float32 then,
            never the whole output. The values are the same as the returned output's, bit for bit: every
            pixel sums its tiles' contributions in the same order.

    Returns:
        ``(1, C, H*scale, W*scale)`` float32 on the CPU; None with a ``sink``.
    """
    _, c, h, w = x.shape
    tile = tile or max(h, w)
    rows, cols = plan_axis(h, tile, overlap), plan_axis(w, tile, overlap)
    total = len(rows) * len(cols)
    if total == 1:
        out = forward(x.to(device)).float().cpu()
        if progress:
            progress(1, 1)
        if sink is not None:
            sink(0, out)
            return None
        return out
    if sink is not None:
        _run_in_bands(forward, x, scale, rows, cols, device, progress, sink)
        return None
    try:
        out = torch.zeros(1, c, h * scale, w * scale, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - smaller tiles would not help: say what is too large
        if not is_out_of_memory(e):
            raise
        raise PclupError(not_enough_memory((h * scale, w * scale), 4 * c * h * w * scale * scale)) from None
    col_weights = [axis_weights(cols, j, scale) for j in range(len(cols))]
    done = 0
    for i, r in enumerate(rows):
        row_weight = axis_weights(rows, i, scale)[:, None]
        for j, col in enumerate(cols):
            piece = forward(x[:, :, r.start : r.stop, col.start : col.stop].to(device)).float().cpu()
            weight = row_weight * col_weights[j][None, :]
            out_rows = slice(r.start * scale, r.stop * scale)
            out[:, :, out_rows, col.start * scale : col.stop * scale] += piece * weight
            done += 1
            if progress:
                progress(done, total)
    return out


def bytes_per_pixel(model: nn.Module, device: torch.device, probe: int = 16) -> float:
    """Rough peak activation bytes per input pixel, measured once on a ``probe`` x ``probe`` input.

    Forward hooks record every module's output size; the peak is taken as twice the largest output plus
    its input (a layer's input and output coexist; attention and im2col buffers add about as much again).
    """
    sizes: list[int] = []

    def hook(_m: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        n_in = sum(t.numel() for t in inputs if isinstance(t, Tensor))
        n_out = output.numel() if isinstance(output, Tensor) else 0
        sizes.append(n_in + n_out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with torch.inference_mode():
            model(torch.rand(1, colour_channels(model.config), probe, probe, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return 2 * 4 * max(sizes, default=1) / (probe * probe)


def free_memory(device: torch.device) -> int:
    """Bytes available for activations on ``device``."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        recommended = getattr(torch.mps, "recommended_max_memory", lambda: 4 << 30)()
        return int(recommended - torch.mps.current_allocated_memory())
    return int(psutil.virtual_memory().available)


def gib(n: float) -> str:
    """Bytes as ``'1.5 GiB'``."""
    return f"{n / 2**30:.1f} GiB"


def not_enough_memory(size: tuple[int, int], need: int | None = None) -> str:
    """One line for an ``(h, w)`` image that does not fit in host memory: its size, its need, what is free."""
    needs = f", which needs about {gib(need)}" if need else ""
    free = gib(free_memory(torch.device("cpu")))
    return (
        f"not enough memory for a {size[1]}x{size[0]}-pixel image{needs}; "
        f"{free} is free, less any limit set on this process"
    )


# On the CPU the activations share host memory with the output image. Measured on a 3000x2000 JPEG at x4
# with the default model (2 cores): a 1 GiB budget peaked at 2.45 GB in 13.0 s, 512 MiB at 1.77 GB in
# 15.2 s, 256 MiB at 1.51 GB in 15.3 s (smaller tiles: more overlap computed twice).
CPU_BUDGET = 256 << 20


def auto_tile(bytes_per_px: float, device: torch.device, multiple: int = 8) -> int:
    """The largest tile side (a multiple of ``multiple``, 32 to 2048) whose activations fit the budget.

    The budget is 60% of the device's free memory on GPUs; on the CPU the smaller of 40% of available
    RAM and :data:`CPU_BUDGET`.
    """
    free = free_memory(device)
    budget = 0.6 * free if device.type != "cpu" else min(0.4 * free, CPU_BUDGET)
    side = int(math.sqrt(max(budget, 0) / max(bytes_per_px, 1.0)))
    side = side // multiple * multiple
    return max(32, min(2048, side))
