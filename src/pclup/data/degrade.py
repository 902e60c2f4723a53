"""Realistic degradations: a second-order blur / resize / noise / JPEG pipeline that turns an HR image into
the kind of LR image a camera or the web produces.

The pipeline follows Real-ESRGAN's (Wang et al. 2021, "Training Real-World Blind Super-Resolution with
Pure Synthetic Data"), and its default ranges are the ones published with that method:

1. **First order**, at the HR size: blur (isotropic or anisotropic Gaussian, generalized Gaussian,
   plateau, or a 2-D sinc), random resize (up, down or keep; area, bilinear or bicubic), Gaussian or
   Poisson noise (in colour or grey), JPEG at a random quality.
2. **Second order**, with its own ranges: blur (with some probability), a random resize around the LR
   size, noise, then, in one of two orders drawn at random, JPEG and [resize to the LR size + a sinc
   filter].
3. The result is rounded to 8-bit levels: the LR image, exactly ``HR size / scale``.

Every random choice (kernel type and shape, resize factor and mode, noise kind and level, the noise
itself, JPEG quality, the order of the last steps) is drawn from the ``torch.Generator`` given to
:meth:`Degradation.apply`: the same generator state gives the same LR image. The arithmetic runs in the
dtype asked for: float64 (the default) makes the 8-bit result the same on every CPU, since float32
convolutions may round differently from one vector unit to another; training uses float32 for speed
(the same on one machine).

JPEG uses Pillow's encoder (libjpeg, 4:2:0 chroma subsampling, Pillow's quantisation tables) on the
image rounded to 8 bits, where Real-ESRGAN uses a differentiable re-implementation; the quality is
drawn as a float and rounded to the nearest integer.

The ranges live in a TOML table (``[degradation]``, with ``[degradation.first]``,
``[degradation.second]`` and ``[degradation.final]``); :func:`load_degradation` reads one,
:meth:`Degradation.to_toml` writes one. A key left out keeps the default.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UsageError
from ..images.arrays import jpeg

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "DEGRADATIONS",
    "KERNELS",
    "RESIZE_MODES",
    "Degradation",
    "Final",
    "Stage",
    "blur_kernel",
    "filter2d",
    "jpeg",
    "load_degradation",
    "sinc_kernel",
]

#: Blur kernel kinds, as Real-ESRGAN names them.
KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
#: Interpolation modes of the random resizes.
RESIZE_MODES = ("area", "bilinear", "bicubic")
#: The named degradations (besides a TOML file): ``bicubic`` is the classic clean downscale.
DEGRADATIONS = ("bicubic", "realistic")
#: Largest degradation file read (a TOML table of a few dozen numbers).
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Stage:
    """One order of the pipeline: blur, random resize, noise, JPEG. Ranges are ``[lo, hi]``."""

    blur_prob: float = 1.0  # chance the stage blurs at all
    kernel_size: tuple[int, int] = (7, 21)  # odd sizes in this range, each equally likely
    kernels: dict[str, float] = field(
        default_factory=lambda: {
            "iso": 0.45,
            "aniso": 0.25,
            "generalized_iso": 0.12,
            "generalized_aniso": 0.03,
            "plateau_iso": 0.12,
            "plateau_aniso": 0.03,
        }
    )  # kind -> probability (normalised)
    sinc_prob: float = 0.1  # chance the blur is a 2-D sinc instead of one of the kernels
    blur_sigma: tuple[float, float] = (0.2, 3.0)  # standard deviation of each axis, in pixels
    betag: tuple[float, float] = (0.5, 4.0)  # shape of the generalized Gaussian
    betap: tuple[float, float] = (1.0, 2.0)  # shape of the plateau
    resize: dict[str, float] = field(default_factory=lambda: {"up": 0.2, "down": 0.7, "keep": 0.1})
    resize_range: tuple[float, float] = (0.15, 1.5)  # up: U(1, hi), down: U(lo, 1)
    noise_prob: float = 1.0  # chance the stage adds noise at all (Real-ESRGAN: always)
    gaussian_noise_prob: float = 0.5  # Gaussian, else Poisson
    noise_sigma: tuple[float, float] = (1.0, 30.0)  # Gaussian standard deviation, in 8-bit levels
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4  # the same noise in every channel
    jpeg_prob: float = 1.0  # chance the stage compresses (Real-ESRGAN: always)
    jpeg_quality: tuple[float, float] = (30.0, 95.0)


def _second() -> Stage:
    return Stage(
        blur_prob=0.8,
        blur_sigma=(0.2, 1.5),
        resize={"up": 0.3, "down": 0.4, "keep": 0.3},
        resize_range=(0.3, 1.2),
        noise_sigma=(1.0, 25.0),
        poisson_scale=(0.05, 2.5),
    )


@dataclass(frozen=True)
class Final:
    """The last step: resize to the LR size and a sinc filter, before or after the last JPEG."""

    sinc_prob: float = 0.8  # chance of the final sinc filter
    kernel_size: tuple[int, int] = (7, 21)
    cutoff: tuple[float, float] = (math.pi / 3, math.pi)  # the sinc's cut-off frequency, radians
    resize_first_prob: float = 0.5  # [resize + sinc] then JPEG; else JPEG then [resize + sinc]


@dataclass(frozen=True)
class Degradation:
    """The whole pipeline (defaults: Real-ESRGAN's published ranges). ``clean_prob``: the chance a sample
    is left as the plain bicubic downscale, which keeps a model trained on the pipeline good on clean
    input (0 in Real-ESRGAN)."""

    first: Stage = field(default_factory=Stage)
    second: Stage = field(default_factory=_second)
    final: Final = field(default_factory=Final)
    clean_prob: float = 0.0
    # the chance a sample (not left clean) is the bicubic downscale saved as a JPEG, nothing else: the web
    # photo's damage (0 in Real-ESRGAN), at a quality drawn from jpeg_only_quality
    jpeg_only_prob: float = 0.0
    jpeg_only_quality: tuple[float, float] = (20.0, 90.0)
    name: str = "realistic"

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise UsageError(f"degradation {self.name}: " + "; ".join(problems))

    # ---- the pipeline ------------------------------------------------------------------------------

    def apply(
        self, hr: Tensor, scale: int, generator: torch.Generator, *, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """The LR image of ``hr``.

        Args:
            hr: ``(3, H, W)`` float in ``[0, 1]`` (or ``uint8``); ``H`` and ``W`` divisible by ``scale``.
            scale: the integer SR scale.
            generator: a CPU generator, the only source of randomness.
            dtype: arithmetic precision (float64: the same 8-bit result on every CPU).

        Returns:
            ``(3, H // scale, W // scale)`` float32 in ``[0, 1]``, rounded to 8-bit levels.
        """
        if hr.dim() != 3 or hr.shape[0] != 3:
            raise ValueError(f"hr must be (3, H, W), got {tuple(hr.shape)}")
        h, w = hr.shape[1:]
        if h % scale or w % scale:
            raise ValueError(f"HR size {w}x{h} is not divisible by the scale {scale}")
        x = hr.to(dtype) / 255 if hr.dtype == torch.uint8 else hr.to(dtype)
        x = x.unsqueeze(0)
        lr_size = (h // scale, w // scale)
        if self.clean_prob > 0 and _uniform(generator) < self.clean_prob:
            return _bicubic_uint8(hr, scale)
        if self.jpeg_only_prob > 0 and _uniform(generator) < self.jpeg_only_prob:  # no draw when 0
            quality = _uniform(generator, *self.jpeg_only_quality)
            low = jpeg(_bicubic_uint8(hr, scale).unsqueeze(0).to(dtype), quality)
            return _to_levels(low)
        x = self._stage(x, self.first, generator, target=None)
        x = self._stage(x, self.second, generator, target=lr_size)
        fin = self.final
        sinc = (
            sinc_kernel(_odd(generator, fin.kernel_size), _uniform(generator, *fin.cutoff), dtype)
            if _uniform(generator) < fin.sinc_prob
            else None
        )
        mode = _choice(generator, RESIZE_MODES)
        quality = _uniform(generator, *self.second.jpeg_quality)
        compress = _uniform(generator) < self.second.jpeg_prob
        if _uniform(generator) < fin.resize_first_prob:
            x = _resize(x, lr_size, mode)
            if sinc is not None:
                x = filter2d(x, sinc)
            if compress:
                x = jpeg(x.clamp(0, 1), quality)
        else:
            if compress:
                x = jpeg(x.clamp(0, 1), quality)
            x = _resize(x, lr_size, mode)
            if sinc is not None:
                x = filter2d(x, sinc)
        return _to_levels(x)

    def _stage(self, x: Tensor, st: Stage, g: torch.Generator, target: tuple[int, int] | None) -> Tensor:
        # blur: the kernel is drawn whether or not the stage blurs, so one choice never shifts the others
        blur = _uniform(g) < st.blur_prob
        kernel = self.draw_kernel(st, g, x.dtype)
        if blur:
            x = filter2d(x, kernel)
        # resize: relative to the current size (first order) or to the LR size (second order)
        way = _choice(g, tuple(st.resize), weights=tuple(st.resize.values()))
        lo, hi = st.resize_range
        factor = _uniform(g, 1.0, hi) if way == "up" else _uniform(g, lo, 1.0) if way == "down" else 1.0
        mode = _choice(g, RESIZE_MODES)
        base = x.shape[-2:] if target is None else target
        size = (max(1, int(base[0] * factor)), max(1, int(base[1] * factor)))
        if size != tuple(x.shape[-2:]):
            x = _resize(x, size, mode)
        # noise
        noisy = _uniform(g) < st.noise_prob
        gaussian = _uniform(g) < st.gaussian_noise_prob
        gray = _uniform(g) < st.gray_noise_prob
        level = _uniform(g, *st.noise_sigma) if gaussian else _uniform(g, *st.poisson_scale)
        if noisy:
            x = (
                x + (_gaussian_noise(x, level, gray, g) if gaussian else _poisson_noise(x, level, gray, g))
            ).clamp_(0, 1)
        # JPEG
        quality = _uniform(g, *st.jpeg_quality)
        if _uniform(g) < st.jpeg_prob:
            x = jpeg(x.clamp(0, 1), quality)
        return x

    @staticmethod
    def draw_kernel(st: Stage, g: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
        """One blur kernel of a stage: a sinc with probability ``sinc_prob``, else one of its kinds."""
        size = _odd(g, st.kernel_size)
        if _uniform(g) < st.sinc_prob:
            cutoff = _uniform(g, math.pi / 3, math.pi) if size < 13 else _uniform(g, math.pi / 5, math.pi)
            return sinc_kernel(size, cutoff, dtype)
        kind = _choice(g, tuple(st.kernels), weights=tuple(st.kernels.values()))
        sx = _uniform(g, *st.blur_sigma)
        sy = _uniform(g, *st.blur_sigma)
        theta = _uniform(g, -math.pi, math.pi)
        beta_range = st.betag if kind.startswith("generalized") else st.betap
        beta = _uniform(g, beta_range[0], 1.0) if _uniform(g) < 0.5 else _uniform(g, 1.0, beta_range[1])
        if kind.endswith("iso") and not kind.endswith("aniso"):
            sy, theta = sx, 0.0
        return blur_kernel(kind, size, sx, sy, theta, beta, dtype)

    # ---- TOML --------------------------------------------------------------------------------------

    def to_toml(self) -> str:
        """This pipeline's ranges as a ``[degradation]`` TOML table (:func:`load_degradation` reads it)."""
        lines = ["[degradation]", f"clean_prob = {_value(self.clean_prob)}",
                 f"jpeg_only_prob = {_value(self.jpeg_only_prob)}",
                 f"jpeg_only_quality = {_value(self.jpeg_only_quality)}"]
        for part in ("first", "second", "final"):
            lines += ["", f"[degradation.{part}]"]
            for f in dataclasses.fields(getattr(self, part)):
                lines.append(f"{f.name} = {_value(getattr(getattr(self, part), f.name))}")
        return "\n".join(lines) + "\n"


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v)


def _problems(d: Degradation) -> list[str]:
    out: list[str] = []

    def prob(name: str, p: float) -> None:
        if not 0 <= p <= 1:
            out.append(f"{name} must be in [0, 1], got {p}")

    def rng(name: str, r: tuple[float, float], lo: float, hi: float = math.inf) -> None:
        if len(r) != 2 or not lo <= r[0] <= r[1] <= hi:
            out.append(f"{name} must be [lo, hi] with {lo} <= lo <= hi <= {hi}, got {list(r)}")

    prob("clean_prob", d.clean_prob)
    prob("jpeg_only_prob", d.jpeg_only_prob)
    rng("jpeg_only_quality", d.jpeg_only_quality, 1, 100)
    for part in ("first", "second"):
        st: Stage = getattr(d, part)
        for name in (
            "blur_prob",
            "sinc_prob",
            "noise_prob",
            "gaussian_noise_prob",
            "gray_noise_prob",
            "jpeg_prob",
        ):
            prob(f"{part}.{name}", getattr(st, name))
        rng(f"{part}.kernel_size", st.kernel_size, 1, 51)
        if (
            st.kernel_size
            and len(st.kernel_size) == 2
            and not any(k % 2 for k in range(st.kernel_size[0], st.kernel_size[1] + 1))
        ):
            out.append(f"{part}.kernel_size has no odd size")
        rng(f"{part}.blur_sigma", st.blur_sigma, 1e-3, 50)
        for name in ("betag", "betap"):
            r = getattr(st, name)
            rng(f"{part}.{name}", r, 0.05, 100)
            if len(r) == 2 and not r[0] <= 1 <= r[1]:
                out.append(f"{part}.{name} must contain 1 (half the draws fall below it), got {list(r)}")
        rng(f"{part}.resize_range", st.resize_range, 0.01, 8)
        if len(st.resize_range) == 2 and not st.resize_range[0] <= 1 <= st.resize_range[1]:
            out.append(f"{part}.resize_range must contain 1, got {list(st.resize_range)}")
        rng(f"{part}.noise_sigma", st.noise_sigma, 0, 255)
        rng(f"{part}.poisson_scale", st.poisson_scale, 0, 100)
        rng(f"{part}.jpeg_quality", st.jpeg_quality, 1, 100)
        for name, table, keys in (
            ("kernels", st.kernels, KERNELS),
            ("resize", st.resize, ("up", "down", "keep")),
        ):
            bad = sorted(set(table) - set(keys))
            if bad:
                out.append(f"{part}.{name}: unknown kind(s) {', '.join(bad)} (known: {', '.join(keys)})")
            if (
                any(
                    not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0
                    for v in table.values()
                )
                or not sum(v for v in table.values() if isinstance(v, (int, float))) > 0
            ):
                out.append(f"{part}.{name} must give non-negative probabilities that do not all vanish")
    prob("final.sinc_prob", d.final.sinc_prob)
    prob("final.resize_first_prob", d.final.resize_first_prob)
    rng("final.kernel_size", d.final.kernel_size, 1, 51)
    rng("final.cutoff", d.final.cutoff, 1e-3, math.pi)
    return out


# --------------------------------------------------------------------------------------------------
# Random draws: every one from the generator, in float64, one at a time in a fixed order


def _uniform(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _choice(g: torch.Generator, items: tuple[str, ...], weights: tuple[float, ...] | None = None) -> str:
    w = np.asarray(weights if weights is not None else [1.0] * len(items), dtype=np.float64)
    cum = np.cumsum(w / w.sum())
    u = _uniform(g)
    return items[min(int(np.searchsorted(cum, u, side="right")), len(items) - 1)]


def _odd(g: torch.Generator, size_range: tuple[int, int]) -> int:
    sizes = [k for k in range(int(size_range[0]), int(size_range[1]) + 1) if k % 2]
    return sizes[int(torch.randint(len(sizes), (), generator=g))]


# --------------------------------------------------------------------------------------------------
# Kernels


def _grid(size: int) -> np.ndarray:
    ax = np.arange(size, dtype=np.float64) - size // 2
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def blur_kernel(
    kind: str,
    size: int,
    sigma_x: float,
    sigma_y: float,
    theta: float,
    beta: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """A normalised ``(size, size)`` blur kernel.

    ``iso``/``aniso``: Gaussian ``exp(-q/2)``; ``generalized_*``: ``exp(-q^beta / 2)``; ``plateau_*``:
    ``1 / (1 + q^beta)``; where ``q = d^T S^-1 d`` and ``S`` is the covariance with standard deviations
    ``sigma_x``, ``sigma_y`` rotated by ``theta`` (the ``iso`` kinds use ``sigma_x`` for both, no rotation).
    """
    if kind not in KERNELS:
        raise ValueError(f"unknown kernel kind {kind!r}")
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sigma_y, theta = sigma_x, 0.0
    c, s = math.cos(theta), math.sin(theta)
    u = np.array([[c, -s], [s, c]])
    cov = u @ np.diag([sigma_x**2, sigma_y**2]) @ u.T
    grid = _grid(size)
    q = np.einsum("...i,ij,...j->...", grid, np.linalg.inv(cov), grid)
    if kind in ("iso", "aniso"):
        k = np.exp(-0.5 * q)
    elif kind.startswith("generalized"):
        k = np.exp(-0.5 * np.power(q, beta))
    else:
        k = 1.0 / (np.power(q, beta) + 1.0)
    return torch.from_numpy(k / k.sum()).to(dtype)


def sinc_kernel(size: int, cutoff: float, dtype: torch.dtype = torch.float64) -> Tensor:
    """A normalised ``(size, size)`` circular low-pass (2-D sinc) kernel with cut-off ``cutoff`` radians:
    ``cutoff * J1(cutoff * r) / (2 pi r)``, ``cutoff^2 / (4 pi)`` at the centre."""
    r = torch.from_numpy(np.hypot(*np.moveaxis(_grid(size), -1, 0)))
    safe = torch.where(r == 0, torch.ones_like(r), r)
    k = cutoff * torch.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe)
    k[size // 2, size // 2] = cutoff**2 / (4 * math.pi)
    return (k / k.sum()).to(dtype)


# --------------------------------------------------------------------------------------------------
# Operations on (1, 3, H, W) images


def filter2d(x: Tensor, kernel: Tensor) -> Tensor:
    """``x`` (``(N, C, H, W)``) convolved with one 2-D ``kernel``, reflect padding (replicate where the image
    is too small to reflect). float64 images are convolved through the FFT (the direct float64 convolution
    is about 100 times slower on CPUs); the two agree to about 1e-15."""
    k = kernel.to(dtype=x.dtype, device=x.device)
    size = k.shape[-1]
    r = size // 2
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    channels = x.shape[1]
    padded = F.pad(x, (r, r, r, r), mode=mode)
    if x.dtype == torch.float64:
        ph, pw = padded.shape[-2:]
        spectrum = torch.fft.rfft2(padded) * torch.fft.rfft2(k, s=(ph, pw))
        full = torch.fft.irfft2(spectrum, s=(ph, pw))
        return full[..., 2 * r :, 2 * r :].contiguous()
    return F.conv2d(padded, k.flip(-1, -2).expand(channels, 1, size, size), groups=channels)


def _resize(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def _gaussian_noise(x: Tensor, sigma: float, gray: bool, g: torch.Generator) -> Tensor:
    shape = (1, 1, *x.shape[-2:]) if gray else tuple(x.shape)
    noise = torch.randn(shape, generator=g, dtype=torch.float64).to(x.dtype) * (sigma / 255)
    return noise.expand_as(x)


def _poisson_noise(x: Tensor, scale: float, gray: bool, g: torch.Generator) -> Tensor:
    if gray:
        weights = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        x = (x * weights).sum(1, keepdim=True)
    img = x.mul(255).clamp(0, 255).round().div(255)
    levels = 2 ** math.ceil(math.log2(max(2, int(torch.unique(img).numel()))))
    counts = torch.poisson((img * levels).to(torch.float64), generator=g).to(x.dtype)
    return ((counts / levels - img) * scale).expand(-1, 3, -1, -1)


def _to_levels(x: Tensor) -> Tensor:
    """A ``(1, 3, h, w)`` image rounded to 8-bit levels, as the ``(3, h, w)`` float32 LR."""
    return x.mul(255).clamp_(0, 255).round_().div_(255).squeeze(0).to(torch.float32)


def _bicubic_uint8(hr: Tensor, scale: int) -> Tensor:
    from ..imresize import bicubic_downscale_uint8

    a = hr if hr.dtype == torch.uint8 else hr.mul(255).clamp(0, 255).round().to(torch.uint8)
    low = bicubic_downscale_uint8(a.permute(1, 2, 0).contiguous().numpy(), scale)
    return torch.from_numpy(np.ascontiguousarray(low.transpose(2, 0, 1))).float().div(255)


# --------------------------------------------------------------------------------------------------
# Reading


def load_degradation(spec: str | Path | None) -> Degradation | None:
    """The degradation a flag names: ``bicubic`` (or None): None, the classic clean downscale;
    ``realistic``: Real-ESRGAN's ranges; else a TOML file with a ``[degradation]`` table (or the keys at the
    top level). Unknown keys, wrong types and out-of-range values are one-line errors naming them."""
    if spec is None or str(spec) == "bicubic":
        return None
    if str(spec) == "realistic":
        return Degradation()
    path = Path(spec)
    if path.suffix.lower() != ".toml":
        raise UsageError(
            f"--degradation must be one of {', '.join(DEGRADATIONS)} or a .toml file, not {spec!r}"
        )
    try:
        if not path.is_file():
            raise UsageError(f"degradation file {path}: no such file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UsageError(
                f"degradation file {path}: larger than {MAX_FILE_BYTES // 1024} KiB, not a settings file"
            )
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"degradation file {path}: not valid TOML ({e})") from None
    if "degradation" in data and isinstance(data["degradation"], Mapping):
        data = data["degradation"]
    return degradation_from_mapping(data, source=str(path), name=path.stem)


def degradation_from_mapping(
    data: Mapping[str, Any], source: str = "degradation", name: str = "custom"
) -> Degradation:
    """A :class:`Degradation` from a mapping as :meth:`Degradation.to_toml` writes it."""
    top: dict[str, Any] = {}
    known_top = {"clean_prob", "jpeg_only_prob", "jpeg_only_quality", "first", "second", "final"}
    unknown = sorted(set(data) - known_top)
    if unknown:
        raise UsageError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known_top))}"
        )
    for key in ("clean_prob", "jpeg_only_prob"):
        if key in data:
            top[key] = _number(f"{source}: {key}", data[key])
    if "jpeg_only_quality" in data:
        value = data["jpeg_only_quality"]
        if not isinstance(value, list) or len(value) != 2:
            raise UsageError(f"{source}: jpeg_only_quality must be a [lo, hi] pair, not {value!r}")
        top["jpeg_only_quality"] = tuple(_number(f"{source}: jpeg_only_quality", v) for v in value)
    defaults = Degradation()
    for part, cls in (("first", Stage), ("second", Stage), ("final", Final)):
        if part not in data:
            continue
        table = data[part]
        if not isinstance(table, Mapping):
            raise UsageError(f"{source}: {part} must be a table")
        base = getattr(defaults, part)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        bad = sorted(set(table) - set(fields))
        if bad:
            raise UsageError(
                f"{source}: unknown key(s) {', '.join(f'{part}.{b}' for b in bad)}; "
                f"known: {', '.join(f'{part}.{f}' for f in fields)}"
            )
        values: dict[str, Any] = {}
        for key, value in table.items():
            where = f"{source}: {part}.{key}"
            current = getattr(base, key)
            if isinstance(current, dict):
                if not isinstance(value, Mapping):
                    raise UsageError(f"{where} must be a table of probabilities")
                values[key] = {str(k): _number(f"{where}.{k}", v) for k, v in value.items()}
            elif isinstance(current, tuple):
                if not isinstance(value, list) or len(value) != 2:
                    raise UsageError(f"{where} must be a [lo, hi] pair, not {value!r}")
                values[key] = tuple(_number(where, v) for v in value)
                if key == "kernel_size":
                    if any(float(v) != int(v) for v in values[key]):
                        raise UsageError(f"{where} must be integers, not {value!r}")
                    values[key] = tuple(int(v) for v in values[key])
            else:
                values[key] = _number(where, value)
        top[part] = dataclasses.replace(base, **values)
    return Degradation(**top, name=name)


def _number(where: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise UsageError(f"{where} must be a finite number, not {v!r}")
    return float(v)
