"""MATLAB-compatible bicubic ``imresize`` in PyTorch, for benchmark LR images and the bicubic baseline.

The super-resolution benchmarks (Set5, Set14, B100, Urban100, Manga109) make their low-resolution
inputs with MATLAB's ``imresize(hr, 1/s, 'bicubic')`` on ``uint8`` images and report the bicubic
baseline as ``imresize(lr, s, 'bicubic')``. PIL, OpenCV and ``torch.nn.functional.interpolate``
all differ from it (other cubic coefficient, no antialiasing or a different one, other edge rule,
other output size), by enough to move PSNR by tenths of a dB. This module reproduces MATLAB's
algorithm (``toolbox/images/images/imresize.m`` with its ``contributions`` function and the
``imresizemex`` kernel):

* Kernel: Keys' cubic with ``a = -0.5``, support ``[-2, 2]`` (width 4)::

      k(t) = 1.5|t|^3 - 2.5|t|^2 + 1              for |t| <= 1
             -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2      for 1 < |t| <= 2
             0                                    otherwise

* Antialiasing (on by default, as in MATLAB): when a dimension shrinks (``scale < 1``) the kernel
  is stretched, ``h(t) = scale * k(scale * t)``, and its width becomes ``4 / scale``.
* Output size: ``ceil(scale * n)`` when a scale is given (MATLAB's rule, in float64); when a size
  is given, the scale of each dimension is ``out / in``.
* Coordinates (1-based, as in MATLAB): output pixel ``x`` samples the input at
  ``u = x / scale + 0.5 * (1 - 1 / scale)``, so pixel edges line up. Taps are the
  ``P = ceil(width) + 2`` integers from ``floor(u - width / 2)``; their weights ``h(u - i)`` are
  divided by their sum, and tap columns that are zero for every output pixel are dropped.
* Edges: taps outside the image are mirrored, ``edge="symmetric"`` (MATLAB's
  ``aux = [1:n, n:-1:1]``; 0-based: index -1 -> 0, -2 -> 1, n -> n - 1, n + 1 -> n - 2). This is
  what recent MATLAB does (the Python port ``fatheral/matlab_imresize``, which mirrors like this,
  reports zero difference from R2015b). Copies of ``imresize.m`` dated 2013 and earlier clamp the
  taps instead ("replicating end-points"); ``edge="replicate"`` gives that older behaviour. The
  two differ only in output pixels within about ``2 / scale`` input pixels of the border.
* Order: the image is resized one dimension at a time, the dimension with the smallest scale
  factor first (MATLAB's ``[~, order] = sort(scale)``; a stable sort, so rows (H) first when the
  scales are equal). In exact arithmetic the order does not matter; it does for ``uint8`` input.
* ``uint8`` input: MATLAB's ``imresizemex`` returns the class of its input, so on ``uint8`` images
  the result of the first 1-D pass is rounded (half away from zero) and saturated to ``[0, 255]``
  before the second pass, and again at the end. :func:`imresize` does the same for ``torch.uint8``
  tensors (or with ``quantize=True``), computing each pass in float64.

Each 1-D pass is one product with a precomputed, cached sparse (CSR) matrix of the weights, so
downscaling by 4 costs the 17 taps per output pixel and a handful of large operations (a per-tap
loop of small ones is many times slower on two shared cores): all of Urban100 is downscaled in a
few seconds. Taps that MATLAB applies separately but that fold onto the same input pixel at a
mirrored edge are merged into one weight, which changes results only at the level of float64
rounding (for the dyadic weights of x2 and x4 every operation is exact anyway). Tensors that
require grad, and devices without sparse CSR support, use dense matrices.

:func:`bicubic_downscale_uint8` and :func:`bicubic_upscale` wrap this for NumPy ``(H, W, C)``
``uint8`` images, the form the benchmark code uses.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "bicubic_downscale_uint8",
    "bicubic_upscale",
    "bicubic_upscale_uint8",
    "contributions",
    "cubic",
    "imresize",
    "mod_crop",
    "output_size",
    "round_half_away",
]

EdgeMode = Literal["symmetric", "replicate"]

_KERNEL_WIDTH = 4.0


def cubic(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``), in float64."""
    absx = np.abs(np.asarray(t, dtype=np.float64))
    absx2 = absx**2
    absx3 = absx**3
    return (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) + (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * (
        (1 < absx) & (absx <= 2)
    )


@functools.lru_cache(maxsize=256)
def _contributions_cached(
    in_length: int, out_length: int, scale: float, antialiasing: bool, edge: str
) -> tuple[np.ndarray, np.ndarray]:
    if scale < 1 and antialiasing:
        kernel_width = _KERNEL_WIDTH / scale

        def h(t: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * t)

    else:
        kernel_width = _KERNEL_WIDTH
        h = cubic
    # MATLAB, 1-based throughout; the same float64 operations in the same order.
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = h(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    idx = indices.astype(np.int64)
    if edge == "symmetric":
        # aux = [1:n, n:-1:1]; indices = aux(mod(indices - 1, 2n) + 1), here 0-based.
        period = 2 * in_length
        m = np.mod(idx - 1, period)
        idx = np.where(m < in_length, m, period - 1 - m)
    elif edge == "replicate":
        idx = np.clip(idx, 1, in_length) - 1
    else:
        raise ValueError(f"edge must be 'symmetric' or 'replicate', not {edge!r}")
    keep = np.any(weights != 0, axis=0)
    weights = np.ascontiguousarray(weights[:, keep])
    idx = np.ascontiguousarray(idx[:, keep])
    weights.setflags(write=False)
    idx.setflags(write=False)
    return weights, idx


def contributions(
    in_length: int,
    out_length: int,
    scale: float,
    antialiasing: bool = True,
    edge: EdgeMode = "symmetric",
) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: the weights and 0-based input indices of a 1-D resize.

    Returns ``(weights, indices)``, both of shape ``(out_length, taps)``: output pixel ``i`` is
    ``sum_k weights[i, k] * input[indices[i, k]]``. Weights are float64 and each row sums to 1;
    indices are int64 in ``[0, in_length)``. The arrays are cached and read-only.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"lengths must be positive, got in={in_length}, out={out_length}")
    if not scale > 0 or not math.isfinite(scale):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    return _contributions_cached(int(in_length), int(out_length), float(scale), bool(antialiasing), edge)


def round_half_away(x: Tensor) -> Tensor:
    """Round to the nearest integer, ties away from zero (MATLAB's ``round`` and integer casts)."""
    t = torch.trunc(x)
    return torch.where((x - t).abs() >= 0.5, t + torch.sign(x), t)


def _to_uint8_range_(x: Tensor) -> Tensor:
    """MATLAB's double -> ``uint8`` conversion, in place and kept in the float dtype.

    Saturate to ``[0, 255]``, then round half away from zero (for the non-negative values left,
    ``round`` (half to even) plus one where it rounded a tie down; ``x - round(x)`` is exact).
    Rounding before or after saturating gives the same result.
    """
    x.clamp_(0, 255)
    r = torch.round(x)
    ties_down = (x - r) == 0.5
    return x.copy_(r).add_(ties_down)


@functools.lru_cache(maxsize=256)
def _sparse_operator(
    in_length: int,
    out_length: int,
    scale: float,
    antialiasing: bool,
    edge: str,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor | None:
    """The 1-D resize as a sparse CSR ``(out_length, in_length)`` matrix; ``None`` for the identity.

    Taps that fold onto the same input pixel (mirrored edges) are summed into one entry.
    """
    weights, idx = _contributions_cached(in_length, out_length, scale, antialiasing, edge)
    if in_length == out_length and weights.shape[1] == 1 and np.all(weights == 1):
        if np.array_equal(idx[:, 0], np.arange(in_length)):
            return None
    rows = np.broadcast_to(np.arange(out_length)[:, None], idx.shape)
    coords = torch.from_numpy(np.stack([rows.ravel(), idx.ravel()]))
    values = torch.from_numpy(weights.ravel().copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Sparse CSR tensor support is in beta state"
        op = torch.sparse_coo_tensor(coords, values, (out_length, in_length), check_invariants=True)
        op = op.coalesce().to_sparse_csr()
        return op.to(device=device, dtype=dtype)


def _operator(
    in_length: int,
    out_length: int,
    scale: float,
    antialiasing: bool,
    edge: str,
    dtype: torch.dtype,
    device: torch.device,
    sparse: bool,
) -> Tensor | None:
    """:func:`_sparse_operator`, or the same matrix dense (built per call, not cached: it can be
    large) on devices without sparse CSR support and for autograd."""
    if sparse:
        return _sparse_operator(in_length, out_length, scale, antialiasing, edge, dtype, device)
    cpu = torch.device("cpu")
    op = _sparse_operator(in_length, out_length, scale, antialiasing, edge, torch.float64, cpu)
    return None if op is None else op.to_dense().to(device=device, dtype=dtype)


def _resize_dim(x: Tensor, dim: int, op: Tensor) -> Tensor:
    """One 1-D pass along ``dim`` (-2 or -1): ``out[.., i, ..] = sum_j op[i, j] x[.., j, ..]``.

    Returns a contiguous tensor laid out ``(out_length, <the other dims of x in order>)``; the
    caller moves the resized dimension back.
    """
    moved = x.movedim(dim, 0)
    rest = moved.shape[1:]
    flat = moved.reshape(moved.shape[0], -1)
    return (op @ flat).reshape(op.shape[0], *rest)


def _pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(value, (float, numbers.Real)):  # Real: any real number, NumPy scalars included
        return float(value), float(value)
    vals = tuple(float(v) for v in value)
    if len(vals) != 2:
        raise ValueError(f"{name} must be a number or a pair, got {value!r}")
    return vals[0], vals[1]


def output_size(in_size: tuple[int, int], scale: float | Sequence[float]) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ``ceil(scale * size)`` per dimension, in float64."""
    sh, sw = _pair(scale, "scale")
    return int(math.ceil(sh * in_size[0])), int(math.ceil(sw * in_size[1]))


def imresize(
    x: Tensor,
    scale: float | Sequence[float] | None = None,
    size: tuple[int, int] | None = None,
    antialiasing: bool = True,
    *,
    edge: EdgeMode = "symmetric",
    quantize: bool | None = None,
) -> Tensor:
    """Resize like MATLAB's ``imresize(x, scale)`` / ``imresize(x, [h w])`` with the bicubic kernel.

    Args:
        x: ``(..., H, W)`` tensor, e.g. ``(B, C, H, W)`` or ``(C, H, W)``; float32 or float64 in
            any range (values are not clamped, so bicubic overshoot stays), or ``uint8``, which is
            resized as MATLAB resizes ``uint8`` images (see ``quantize``) and returned as ``uint8``.
            Any device; all leading dimensions are resized in one go.
        scale: factor for both dimensions, or ``(scale_h, scale_w)``. The output size is
            ``ceil(scale * (H, W))``, MATLAB's rule.
        size: output ``(height, width)``; without ``scale`` the factors are ``size / (H, W)`` per
            dimension. Give ``scale``, ``size`` or both (MATLAB then uses both as given).
        antialiasing: stretch the kernel when shrinking (MATLAB's default, ``True``).
        edge: ``"symmetric"`` (MATLAB R2015b and later) or ``"replicate"`` (older MATLAB): how taps
            outside the image are mapped into it.
        quantize: round half away from zero and saturate to ``[0, 255]`` after each 1-D pass, as
            MATLAB does for ``uint8`` images (the input must then hold ``uint8`` values). Defaults
            to ``True`` for ``uint8`` tensors and ``False`` otherwise.

    Returns:
        ``(..., H', W')`` tensor of ``x``'s dtype and device.

    MATLAB semantics: see the module docstring. Float inputs are computed in their own dtype with
    weights computed in float64; ``uint8`` inputs in float64.
    """
    if x.dim() < 2:
        raise ValueError(f"expected a (..., H, W) tensor, got shape {tuple(x.shape)}")
    in_dtype = x.dtype
    if in_dtype == torch.uint8:
        work_dtype = torch.float64
        if quantize is None:
            quantize = True
    elif in_dtype in (torch.float32, torch.float64):
        work_dtype = in_dtype
    else:
        raise TypeError(f"imresize supports float32, float64 and uint8 tensors, not {in_dtype}")
    quantize = bool(quantize)
    h_in, w_in = int(x.shape[-2]), int(x.shape[-1])
    if scale is None and size is None:
        raise ValueError("give scale, size or both")
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"output size must be positive, got {size!r}")
    if scale is not None:
        sh, sw = _pair(scale, "scale")
        if not (sh > 0 and sw > 0 and math.isfinite(sh) and math.isfinite(sw)):
            raise ValueError(f"scale must be positive and finite, got {scale!r}")
        if size is None:
            out_h, out_w = output_size((h_in, w_in), (sh, sw))
    else:
        sh, sw = out_h / h_in, out_w / w_in
    if h_in < 1 or w_in < 1:
        raise ValueError(f"cannot resize an empty image of shape {tuple(x.shape)}")

    # One sparse matrix product per dimension: a handful of large operations rather than one per
    # tap, which matters on a few shared cores. Autograd and devices without sparse CSR support
    # (e.g. MPS) use dense matrices instead.
    sparse = x.device.type in ("cpu", "cuda") and not x.requires_grad
    ops = {
        -2: _operator(h_in, out_h, sh, antialiasing, edge, work_dtype, x.device, sparse),
        -1: _operator(w_in, out_w, sw, antialiasing, edge, work_dtype, x.device, sparse),
    }
    # MATLAB: [~, order] = sort(scale), stable: rows first unless columns shrink more.
    order = (-1, -2) if sw < sh else (-2, -1)

    y = x.to(work_dtype)
    for dim in order:
        op = ops[dim]
        if op is None:
            continue
        out = _resize_dim(y, dim, op)
        if quantize:
            _to_uint8_range_(out)
        y = out.movedim(0, dim)
    y = y.contiguous()
    if y is x:
        y = y.clone()
    if in_dtype == torch.uint8:
        return y.to(torch.uint8)
    return y


def _as_chw_float64(img: np.ndarray) -> tuple[Tensor, bool]:
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {arr.shape}")
    t = torch.from_numpy(arr.astype(np.float64))  # a fresh, writable copy
    if arr.ndim == 2:
        return t[None], True
    return t.permute(2, 0, 1), False


def _from_chw(t: Tensor, was_2d: bool) -> np.ndarray:
    out = t.to(torch.uint8)
    arr = out[0].numpy() if was_2d else out.permute(1, 2, 0).numpy()
    return np.ascontiguousarray(arr)


def _resize_uint8(img: np.ndarray, scale: float, quantize_intermediate: bool, edge: EdgeMode) -> np.ndarray:
    t, was_2d = _as_chw_float64(img)
    y = imresize(t, scale, edge=edge, quantize=quantize_intermediate)
    if not quantize_intermediate:
        y = _to_uint8_range_(y)
    return _from_chw(y, was_2d)


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Cut the bottom rows and right columns so that height and width are multiples of ``scale``.

    MATLAB's ``modcrop``: ``img(1:H - mod(H, s), 1:W - mod(W, s), :)``. ``img`` is ``(H, W, ...)``;
    returns a view (works on NumPy arrays and on tensors laid out ``(H, W, ...)``).
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    h, w = img.shape[0], img.shape[1]
    return img[: h - h % scale, : w - w % scale]


def bicubic_downscale_uint8(
    hr_uint8: np.ndarray,
    scale: int,
    *,
    quantize_intermediate: bool = True,
    edge: EdgeMode = "symmetric",
) -> np.ndarray:
    """The benchmark LR image: MATLAB's ``imresize(hr, 1/scale, 'bicubic')`` on a ``uint8`` image.

    Args:
        hr_uint8: ``(H, W, C)`` or ``(H, W)`` ``uint8`` array, values 0-255. Usually mod-cropped to
            ``scale`` first (see :func:`mod_crop`); otherwise the output size is
            ``ceil(H / scale) x ceil(W / scale)`` like MATLAB's.
        scale: integer downscaling factor (2, 3, 4, ...).
        quantize_intermediate: round and saturate to 8 bits between the two 1-D passes, as
            MATLAB does for ``uint8`` input (``True``, exact). ``False`` keeps the intermediate in
            float64 and rounds only at the end (what ``imresize(im2double(hr), ...)`` followed by
            ``im2uint8`` gives).
        edge: ``"symmetric"`` (MATLAB R2015b+) or ``"replicate"`` (older MATLAB).

    Returns:
        ``uint8`` array shaped like the input with the new height and width. Computed in float64;
        values rounded half away from zero and saturated, as MATLAB's ``uint8`` conversion does.
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return _resize_uint8(hr_uint8, 1.0 / int(scale), quantize_intermediate, edge)


def bicubic_upscale(
    lr_uint8: np.ndarray,
    scale: float,
    *,
    quantize_intermediate: bool = True,
    edge: EdgeMode = "symmetric",
) -> np.ndarray:
    """The bicubic baseline: MATLAB's ``imresize(lr, scale, 'bicubic')`` on a ``uint8`` image.

    Args:
        lr_uint8: ``(H, W, C)`` or ``(H, W)`` ``uint8`` array, values 0-255.
        scale: upscaling factor; the output is ``ceil(scale * H) x ceil(scale * W)``.
        quantize_intermediate, edge: as in :func:`bicubic_downscale_uint8`.

    Returns:
        ``uint8`` array, rounded half away from zero and saturated, as in MATLAB.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    return _resize_uint8(lr_uint8, float(scale), quantize_intermediate, edge)


#: Another name for :func:`bicubic_upscale`, symmetric with :func:`bicubic_downscale_uint8`.
bicubic_upscale_uint8 = bicubic_upscale
