"""The training data pipeline: the train set decoded once into memory, and deterministic patch batches.

Three parts:

* :class:`TrainImages` finds every image below some folders, decodes each one once to RGB ``uint8``,
  mod-crops it to the scale and computes its LR once with the MATLAB bicubic
  (:func:`pclup.imresize.bicubic_downscale_uint8`), and keeps both in memory. The classic train sets
  are small (T91 + BSD200 + General100, 390 images: about 162 MB of HR pixels, plus 40 MB of LR at
  x2 or 10 MB at x4), so holding them decoded costs little and makes every batch a matter of slicing.
  Unreadable files and images smaller than a patch are skipped, counted and named
  (:meth:`TrainImages.skipped_summary`; at x4 with 48-pixel LR patches, 57 of the 390, mostly T91
  thumbnails, are under 192 px).
* :class:`PatchBatches` is a map-style dataset whose item ``step`` is the whole batch of that global
  step. Every random choice of that batch (images, crop positions, flips and transposition) is drawn
  from a ``torch.Generator`` seeded with a hash of ``(seed, step)``: the batch at step N is a pure
  function of the seed, N and the train set, whatever the number of loader workers, the loss, the
  number of DDP processes or how often the run was stopped and resumed.
* :func:`make_loader` iterates the steps from a start step, in order, optionally with worker processes.

Patch sampling (``sampling=``):

* ``"area"`` (the default): every crop position in the whole set is equally likely. An image is
  chosen with probability proportional to its number of LR crop positions,
  ``(h - p + 1) * (w - p + 1)``, nearly its area, so a 500-pixel photo gives more patches than a
  100-pixel T91 thumbnail, as "a random patch from the set" means; one integer draw picks the image
  and the position together.
* ``"uniform"``: every image equally likely, then a position in it uniformly: small images are seen
  as often as large ones (more repetition of the same pixels).

Alignment: the LR crop starts at ``(y, x)`` in the LR image and the HR crop at ``(y * s, x * s)``, of
size ``p * s``: both cover the same area of the picture. The same flips and transposition are then
applied to both. The LR image is computed once from the *whole* HR image, so an LR patch is exactly a
crop of the full image's LR. Re-downscaling an HR patch on its own gives the same pixels only away
from the patch border (2 LR pixels: there the bicubic taps would reach outside the patch), and only
in the patch's original orientation: MATLAB's ``imresize`` rounds to 8 bits between its row and
column passes, so a transposed HR patch does not downscale to the exact transposed LR patch. The
pipeline never re-downscales; it transposes both patches, as EDSR's augmentation does.

Workers: each worker process needs the decoded images. With the ``fork`` start method (what
:func:`make_loader` uses on Linux, whatever Python's default) the workers share the parent's arrays
copy-on-write: the pixel buffers are never written to, so no page is copied and memory does not grow
with the number of workers. On platforms that start workers by ``spawn`` (macOS, Windows) the images
are first packed into two buffers in torch's shared memory (:meth:`TrainImages.share_memory`, done
by :func:`make_loader`), which the workers map rather than copy: memory stays one copy (two for a
moment while packing). On Linux, :meth:`TrainImages.scan` also hands the memory freed by decoding
back to the system after every image (glibc's ``malloc_trim``); without that, the process kept
about five times the pixels it holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import operator
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from .._fs import libc_trim
from ..errors import ImageReadError, UsageError
from ..images import Image, image_files, read_image, to_uint8
from ..imresize import bicubic_downscale_uint8, mod_crop
from .degrade import Degradation

__all__ = [
    "SAMPLING",
    "BatchPlan",
    "PatchBatches",
    "ScanStats",
    "StepSampler",
    "TrainImages",
    "augment",
    "default_workers",
    "make_loader",
    "rgb_uint8",
    "step_generator",
    "unaugment",
]

#: The patch sampling modes of :class:`PatchBatches` (see the module docstring).
SAMPLING: tuple[str, ...] = ("area", "uniform")

ProgressCallback = Callable[[int, int, Path], None]

_READ_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------
# Decoding


def rgb_uint8(image: Image) -> np.ndarray:
    """An image's pixels as a contiguous (H, W, 3) ``uint8`` array.

    Grey is repeated into three channels; 16-bit samples become ``round(v * 255 / 65535)``; alpha is
    dropped (the colour under transparent pixels is kept as it is in the file).
    """
    pixels = image.pixels
    if pixels.dtype == np.uint16:
        pixels = to_uint8(pixels)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels)


def _hr_lr(hr_rgb: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """HR mod-cropped (planar memory, see :func:`_planar`) and its LR (planar too)."""
    hr = _planar(mod_crop(hr_rgb, scale))
    return hr, _planar(bicubic_downscale_uint8(hr, scale))


def _planar(a: np.ndarray) -> np.ndarray:
    """An (H, W, 3) array whose memory is laid out plane by plane (C, H, W): a view when it already
    is, else a copy. Crops then copy whole rows of one channel, and the (B, 3, h, w) batch is a
    plain casting copy: about 4 times faster than from interleaved RGB."""
    chw = a.transpose(2, 0, 1)
    if not chw.flags.c_contiguous:
        chw = np.ascontiguousarray(chw)
    return chw.transpose(1, 2, 0)


def _cause(exc: ImageReadError, path: Path) -> str:
    """The cause part of ``read_image``'s "cannot read PATH: cause" message."""
    text = str(exc)
    prefix = f"cannot read {path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------------------------------
# The train set in memory


@dataclass
class ScanStats:
    """What :meth:`TrainImages.scan` did.

    ``found`` image files (by extension, hidden ones excluded), ``decoded`` successfully,
    ``downscaled``: LR images computed (once per kept image, never again afterwards), ``seconds`` the
    whole scan took.
    """

    found: int = 0
    decoded: int = 0
    downscaled: int = 0
    seconds: float = 0.0


class TrainImages:
    """Training images decoded into memory: HR (mod-cropped) and LR, both (H, W, 3) ``uint8``.

    Build one with :meth:`scan` (folders) or :meth:`from_arrays` (arrays already in memory).

    Attributes:
        hr: HR images, each mod-cropped to ``scale``: (H, W, 3) ``uint8`` arrays whose memory is
            planar (``hr[i].transpose(2, 0, 1)`` is C-contiguous), which makes batches fast.
        lr: their LR images, ``bicubic_downscale_uint8(hr[i], scale)``, laid out the same way.
        paths: where each came from (``None`` for arrays given directly).
        scale: the integer scale.
        min_hr_size: the smallest HR side kept.
        skipped_small: images skipped because an HR side (after mod-crop) was under ``min_hr_size``.
        small: ``(path, size)`` of each of those, size as ``"WxH px"`` (empty for arrays given directly).
        corrupt: ``(path, reason)`` of each file that could not be decoded.
        folders: the folders scanned.
        stats: a :class:`ScanStats`.
    """

    def __init__(
        self,
        hr: list[np.ndarray],
        lr: list[np.ndarray],
        scale: int,
        *,
        paths: Sequence[Path | None] | None = None,
        min_hr_size: int = 1,
        skipped_small: int = 0,
        small: Sequence[tuple[Path, str]] = (),
        corrupt: Sequence[tuple[Path, str]] = (),
        folders: Sequence[Path] = (),
        stats: ScanStats | None = None,
    ) -> None:
        if len(hr) != len(lr):
            raise ValueError(f"{len(hr)} HR images but {len(lr)} LR images")
        for h, low in zip(hr, lr, strict=True):
            if h.dtype != np.uint8 or h.ndim != 3 or h.shape[2] != 3 or low.dtype != np.uint8:
                raise ValueError("images must be (H, W, 3) uint8 arrays")
            if h.shape[0] != low.shape[0] * scale or h.shape[1] != low.shape[1] * scale:
                raise ValueError(f"HR {h.shape} and LR {low.shape} do not match at x{scale}")
        self.hr = [_planar(a) for a in hr]
        self.lr = [_planar(a) for a in lr]
        self.scale = int(scale)
        self.paths: list[Path | None] = list(paths) if paths is not None else [None] * len(hr)
        self.min_hr_size = int(min_hr_size)
        self.small = list(small)
        self.skipped_small = max(int(skipped_small), len(self.small))
        self.corrupt = list(corrupt)
        self.folders = list(folders)
        self.stats = stats or ScanStats(found=len(hr), decoded=len(hr), downscaled=len(hr))
        self._shared: tuple[Tensor, Tensor] | None = None

    # ---- construction ----------------------------------------------------------------------------

    @classmethod
    def scan(
        cls,
        folders: Sequence[str | os.PathLike[str]],
        scale: int,
        min_hr_size: int,
        on_progress: ProgressCallback | None = None,
        *,
        threads: int | None = None,
    ) -> TrainImages:
        """Decode every image below ``folders`` and compute its LR.

        Args:
            folders: folders searched recursively for PNG, JPEG, WebP, TIFF and BMP files (by
                extension, any case); hidden files and folders (name starting with ``.``) are skipped,
                and a file found twice (overlapping folders) is read once.
            scale: the integer SR scale; HR images are mod-cropped to it.
            min_hr_size: images whose HR height or width (after mod-crop) is under this are skipped
                and counted; pass ``patch_size * scale``.
            on_progress: called as ``on_progress(done, total, path)`` after each file, in file order.
            threads: threads (default ``min(4, CPUs)``): one decodes at a time (``read_image`` changes
                the process-wide warning filters), the others compute LR images meanwhile (the
                resize releases the GIL).

        Raises:
            UsageError: a folder that does not exist, a bad scale, or no usable image at all (one line
                naming the folders and the counts).
        """
        t0 = time.perf_counter()
        if int(scale) != scale or scale < 1:
            raise UsageError(f"scale must be a positive integer, got {scale!r}")
        scale = int(scale)
        roots = [Path(f).expanduser() for f in folders]
        if not roots:
            raise UsageError("no training folder given")
        for root in roots:
            if not root.is_dir():
                what = "is not a folder" if root.exists() else "does not exist"
                raise UsageError(f"training folder {root} {what}")
        files: list[Path] = []
        seen: set[Path] = set()
        for root in roots:
            for f in image_files(root):
                key = f.resolve()
                if key not in seen:
                    seen.add(key)
                    files.append(f)

        def load(path: Path) -> tuple[str, Any, Any]:
            try:
                with _READ_LOCK:  # read_image's warnings.catch_warnings() is not thread-safe
                    image = read_image(path)
                pixels = rgb_uint8(image)
                del image
            except ImageReadError as exc:
                return "unreadable", _cause(exc, path), None
            h, w = pixels.shape[0] - pixels.shape[0] % scale, pixels.shape[1] - pixels.shape[1] % scale
            if min(h, w) < max(min_hr_size, scale):
                return "small", f"{pixels.shape[1]}x{pixels.shape[0]} px", None
            return ("ok", *_hr_lr(pixels, scale))

        hr: list[np.ndarray] = []
        lr: list[np.ndarray] = []
        paths: list[Path | None] = []
        corrupt: list[tuple[Path, str]] = []
        small: list[tuple[Path, str]] = []
        stats = ScanStats(found=len(files))
        n_threads = max(1, min(threads or min(4, _cpu_count()), len(files) or 1))
        # Decoding and resizing free many large temporaries between the arrays kept; glibc keeps that
        # memory in its heap rather than giving it back, so the process would grow to about five
        # times the pixels kept (1.1 GB for the 200 MB of the classic x2 set). Trimming after every
        # image (microseconds) keeps it to the pixels plus a few temporaries.
        trim = libc_trim()
        # One torch thread per resize: the threads here already run resizes side by side, and
        # torch's intra-op pool spins at its barriers when the cores are busy (measured on 2 loaded
        # cores: the x2 set took 74 s with 2 intra-op threads against 11 s with 1).
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        with contextlib.ExitStack() as stack:
            stack.callback(torch.set_num_threads, torch_threads)
            pool = stack.enter_context(ThreadPoolExecutor(n_threads))
            for done, (path, (kind, a, b)) in enumerate(zip(files, pool.map(load, files), strict=True), 1):
                if kind == "unreadable":
                    corrupt.append((path, a))
                else:
                    stats.decoded += 1
                    if kind == "small":
                        small.append((path, a))
                    else:
                        hr.append(a)
                        lr.append(b)
                        paths.append(path)
                        stats.downscaled += 1
                if trim is not None:
                    trim()
                if on_progress is not None:
                    on_progress(done, len(files), path)
        stats.seconds = time.perf_counter() - t0
        if not hr:
            where = ", ".join(str(r) for r in roots)
            message = (
                f"no usable training image in {where}: {len(files)} found / {len(small)} too small "
                f"(HR side < {min_hr_size} px) / {len(corrupt)} unreadable"
            )
            if corrupt or small:
                path, reason = (corrupt or small)[0]
                message += f" (first: {path}: {reason})"
            raise UsageError(message)
        return cls(
            hr, lr, scale, paths=paths, min_hr_size=min_hr_size, small=small, corrupt=corrupt,
            folders=roots, stats=stats,
        )

    @classmethod
    def scan_pairs(
        cls,
        folders: Sequence[str | os.PathLike[str]],
        lr_folders: Sequence[str | os.PathLike[str]],
        scale: int,
        min_hr_size: int,
        on_progress: ProgressCallback | None = None,
    ) -> TrainImages:
        """Paired data: HR images below ``folders`` and their LR images below ``lr_folders`` (one LR folder
        per HR folder, in the same order), matched by name.

        A pair has the same path relative to its folder, extension aside; an LR name may also end in
        ``x<scale>`` (``0001x4.png`` for ``0001.png``, as DIV2K names them). The HR image is cropped at its
        bottom and right to exactly ``scale`` times the LR size, which it must reach without exceeding it by
        a whole LR pixel.

        Raises:
            UsageError: different folder counts; an HR image without an LR image or the reverse (naming the
                first few); a pair whose sizes do not match at the scale (naming it and both sizes); no
                usable pair.
        """
        t0 = time.perf_counter()
        if int(scale) != scale or scale < 1:
            raise UsageError(f"scale must be a positive integer, got {scale!r}")
        scale = int(scale)
        roots, lr_roots = [Path(f).expanduser() for f in folders], [Path(f).expanduser() for f in lr_folders]
        if len(roots) != len(lr_roots):
            raise UsageError(
                f"{len(roots)} HR folder(s) but {len(lr_roots)} LR folder(s): give one --data-lr per --data"
            )
        for root in (*roots, *lr_roots):
            if not root.is_dir():
                what = "is not a folder" if root.exists() else "does not exist"
                raise UsageError(f"training folder {root} {what}")
        pairs: list[tuple[Path, Path]] = []
        for root, lr_root in zip(roots, lr_roots, strict=True):
            hr_names = {_pair_key(f, root, None): f for f in image_files(root)}
            lr_names = {_pair_key(f, lr_root, scale): f for f in image_files(lr_root)}
            lonely_hr = sorted(set(hr_names) - set(lr_names))
            lonely_lr = sorted(set(lr_names) - set(hr_names))
            for lonely, have, lack in ((lonely_hr, root, lr_root), (lonely_lr, lr_root, root)):
                if lonely:
                    more = f" and {len(lonely) - 3} more" if len(lonely) > 3 else ""
                    raise UsageError(f"{len(lonely)} image(s) in {have} have no image of the same name in "
                                     f"{lack}: {', '.join(lonely[:3])}{more}")
            pairs += [(hr_names[k], lr_names[k]) for k in sorted(hr_names)]
        hr: list[np.ndarray] = []
        lr: list[np.ndarray] = []
        paths: list[Path | None] = []
        corrupt: list[tuple[Path, str]] = []
        small: list[tuple[Path, str]] = []
        stats = ScanStats(found=len(pairs))
        trim = libc_trim()
        for done, (hr_path, lr_path) in enumerate(pairs, 1):
            try:
                high = rgb_uint8(read_image(hr_path))
                low = rgb_uint8(read_image(lr_path))
            except ImageReadError as exc:
                bad = lr_path if str(lr_path) in str(exc) else hr_path
                corrupt.append((bad, _cause(exc, bad)))
                continue
            stats.decoded += 1
            (H, W), (h, w) = high.shape[:2], low.shape[:2]
            if H // scale != h or W // scale != w:
                raise UsageError(
                    f"{hr_path.name} and {lr_path.name} do not match at x{scale}: HR {W}x{H}, LR {w}x{h} "
                    f"(the HR must be {w * scale}x{h * scale}, up to {scale - 1} px more)"
                )
            if min(h, w) * scale < max(min_hr_size, scale):
                small.append((hr_path, f"{W}x{H} px"))
                continue
            hr.append(_planar(np.ascontiguousarray(high[: h * scale, : w * scale])))
            lr.append(_planar(low))
            paths.append(hr_path)
            stats.downscaled += 0
            if trim is not None:
                trim()
            if on_progress is not None:
                on_progress(done, len(pairs), hr_path)
        stats.seconds = time.perf_counter() - t0
        if not hr:
            where = ", ".join(str(r) for r in roots)
            raise UsageError(
                f"no usable training pair in {where}: {len(pairs)} found / {len(small)} too small "
                f"(HR side < {min_hr_size} px) / {len(corrupt)} unreadable"
            )
        return cls(hr, lr, scale, paths=paths, min_hr_size=min_hr_size, small=small, corrupt=corrupt,
                   folders=roots, stats=stats)

    @classmethod
    def from_arrays(cls, images: Sequence[np.ndarray], scale: int) -> TrainImages:
        """Train images from (H, W, 3) ``uint8`` arrays: mod-cropped, LR computed once."""
        pairs = [_hr_lr(np.asarray(im), scale) for im in images]
        return cls([p[0] for p in pairs], [p[1] for p in pairs], scale)

    # ---- information -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.hr)

    @property
    def hr_bytes(self) -> int:
        """Memory held by the HR images."""
        return sum(a.nbytes for a in self.hr)

    @property
    def lr_bytes(self) -> int:
        """Memory held by the LR images."""
        return sum(a.nbytes for a in self.lr)

    @property
    def nbytes(self) -> int:
        """Memory held by all the pixels, HR and LR."""
        return self.hr_bytes + self.lr_bytes

    def skipped(self) -> list[tuple[Path, str]]:
        """``(path, reason)`` of every file the scan skipped: the unreadable ones, then those too small."""
        return [(p, f"unreadable ({r})") for p, r in self.corrupt] + [
            (p, f"too small ({size}, under {self.min_hr_size} px)") for p, size in self.small
        ]

    def skipped_summary(self, first: int = 3) -> str | None:
        """One line saying how many files were skipped and why, naming the ``first`` few; None when none."""
        skipped = self.skipped()
        if not skipped:
            return None
        names = "; ".join(f"{p}: {r}" for p, r in skipped[:first])
        more = f"; and {len(skipped) - first} more" if len(skipped) > first else ""
        return (
            f"{len(skipped)} of {self.stats.found} image files skipped ({len(self.corrupt)} unreadable, "
            f"{self.skipped_small} smaller than {self.min_hr_size} px): {names}{more}"
        )

    def summary(self) -> str:
        """One line of counts and memory, then one line per unreadable file."""
        where = ", ".join(p.name or str(p) for p in self.folders) or "arrays"
        lines = [
            f"{len(self)} training images from {where} (x{self.scale}): "
            f"{self.hr_bytes / 1e6:.1f} MB HR + {self.lr_bytes / 1e6:.1f} MB LR in memory; "
            f"{self.skipped_small} too small (HR side < {self.min_hr_size} px), "
            f"{len(self.corrupt)} unreadable; scanned in {self.stats.seconds:.1f} s"
        ]
        lines += [f"  unreadable: {path}: {reason}" for path, reason in self.corrupt]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<TrainImages {len(self)} images x{self.scale}, {self.nbytes / 1e6:.1f} MB>"

    # ---- sharing with worker processes -----------------------------------------------------------

    @property
    def is_shared(self) -> bool:
        """Whether the pixels live in torch shared memory (see :meth:`share_memory`)."""
        return self._shared is not None

    def share_memory(self) -> TrainImages:
        """Move the pixels into two buffers of torch shared memory; ``self``.

        Afterwards ``hr`` and ``lr`` are views into those buffers, and pickling this object through
        ``multiprocessing`` (what a ``spawn`` DataLoader does) passes the buffers' file descriptors
        instead of the pixels: worker processes map the same memory. Arrays taken from ``hr``/``lr``
        before the call stay valid (they keep their own memory). Needed only for ``spawn`` and
        ``forkserver`` workers; ``fork`` shares without it.
        """
        if self._shared is not None:
            return self
        packed = []
        for arrays in (self.hr, self.lr):
            buf = torch.empty(sum(a.size for a in arrays), dtype=torch.uint8).share_memory_()
            views = _views(buf, [a.shape for a in arrays])
            for view, a in zip(views, arrays, strict=True):
                view[...] = a
            arrays[:] = views
            packed.append(buf)
        self._shared = (packed[0], packed[1])
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._shared is not None:
            # The buffers travel (by file descriptor through multiprocessing); the views are rebuilt.
            state["hr"] = [a.shape for a in self.hr]
            state["lr"] = [a.shape for a in self.lr]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._shared is not None:
            for key, buf in zip(("hr", "lr"), self._shared, strict=True):
                setattr(self, key, _views(buf, state[key]))
        else:  # pickle stores arrays in C order: back to planar memory
            self.hr = [_planar(a) for a in self.hr]
            self.lr = [_planar(a) for a in self.lr]


def _pair_key(path: Path, root: Path, scale: int | None) -> str:
    """The name a file is paired by: its path below ``root`` without the extension (and, for an LR file,
    without a trailing ``x<scale>``)."""
    key = path.relative_to(root).with_suffix("").as_posix()
    if scale is not None and key.lower().endswith(f"x{scale}") and len(key) > len(f"x{scale}"):
        key = key[: -len(f"x{scale}")]
    return key


def _views(buf: Tensor, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """(H, W, C) planar views, one per shape, packed one after the other in ``buf``."""
    flat, views, offset = buf.numpy(), [], 0
    for h, w, c in shapes:
        views.append(flat[offset : offset + h * w * c].reshape(c, h, w).transpose(1, 2, 0))
        offset += h * w * c
    return views


# --------------------------------------------------------------------------------------------------
# Deterministic batches


def step_generator(seed: int, step: int, stream: str = "patches") -> torch.Generator:
    """A CPU generator seeded from a hash of ``(seed, step, stream)``: independent of any history."""
    digest = hashlib.blake2b(f"{seed}/{step}/{stream}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


@dataclass(frozen=True)
class BatchPlan:
    """The random choices of one global batch, one entry per sample (int64 tensors of length B).

    ``image``: index into the train set; ``y``, ``x``: top-left corner of the LR crop (the HR crop
    starts at ``(y * scale, x * scale)``); ``hflip`` (mirror left-right), ``vflip`` (upside down),
    ``transpose`` (swap height and width), applied in that order: the 8 symmetries of the square.
    """

    image: Tensor
    y: Tensor
    x: Tensor
    hflip: Tensor
    vflip: Tensor
    transpose: Tensor


def augment(patch: np.ndarray, hflip: bool, vflip: bool, transpose: bool) -> np.ndarray:
    """An (H, W, C) patch flipped and transposed as a :class:`BatchPlan` says (a view)."""
    if hflip:
        patch = patch[:, ::-1]
    if vflip:
        patch = patch[::-1]
    if transpose:
        patch = patch.transpose(1, 0, 2)
    return patch


def unaugment(patch: np.ndarray, hflip: bool, vflip: bool, transpose: bool) -> np.ndarray:
    """The inverse of :func:`augment`."""
    if transpose:
        patch = patch.transpose(1, 0, 2)
    if vflip:
        patch = patch[::-1]
    if hflip:
        patch = patch[:, ::-1]
    return patch


class PatchBatches(Dataset[tuple[Tensor, Tensor]]):
    """Item ``step``: the batch of that global training step, as ``(lr, hr)``.

    ``lr`` is a float32 (b, 3, p, p) tensor and ``hr`` a float32 (b, 3, p * s, p * s) tensor, values
    ``uint8 / 255`` in [0, 1], contiguous NCHW, where b = ``batch_size // world_size`` is this
    process's share of the global batch. The global batch is drawn whole from a generator seeded by
    ``(seed, step)`` (see :meth:`plan`); rank r takes samples ``r * b`` to ``(r + 1) * b - 1`` of it, so
    the rank slices of any world size concatenate to the single-process batch.

    Args:
        images: the train set; every image must be at least ``patch_size`` LR pixels on each side
            (scan with ``min_hr_size = patch_size * scale``).
        batch_size: the global batch size, divisible by ``world_size``.
        patch_size: LR patch side p.
        steps: the number of training steps, the dataset's length.
        scale: optional check: must equal ``images.scale``.
        seed: the run's seed.
        rank, world_size: this process's place in DDP.
        sampling: ``"area"`` (each crop position of the set equally likely) or ``"uniform"`` (each
            image equally likely); see the module docstring.
        augment: draw the flips and transposition (otherwise none are applied; the draws still
            happen, so the crops are the same either way).
        stream: the name of the random stream (:func:`step_generator`); the embedding network's warm-up
            draws its batches from ``"warmup"``, so the training batches are the same with or without it.
        degradation: a :class:`~pclup.data.degrade.Degradation`: each sample's LR is made from its HR crop
            by that pipeline instead of being cut from the bicubic LR. The pipeline runs on a window
            ``margin`` LR pixels wider on each side than the patch, and the patch is the window's centre,
            so its blurs see real pixels rather than padding; sample ``i`` of the global batch draws from
            its own generator, ``(seed, step, "<stream>/degradation/<i>")``.
        margin: see ``degradation`` (default 4 LR pixels; only used with a degradation).
    """

    def __init__(
        self,
        images: TrainImages,
        *,
        batch_size: int,
        patch_size: int,
        steps: int,
        scale: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        sampling: Literal["area", "uniform"] = "area",
        augment: bool = True,
        stream: str = "patches",
        degradation: Degradation | None = None,
        margin: int = 4,
    ) -> None:
        if scale is not None and scale != images.scale:
            raise UsageError(f"the training images were prepared for x{images.scale}, not x{scale}")
        if batch_size < 1 or patch_size < 1 or steps < 0:
            raise UsageError(f"bad batch size {batch_size}, patch size {patch_size} or steps {steps}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise UsageError(f"rank {rank} is not in a world of {world_size} processes")
        if batch_size % world_size:
            raise UsageError(f"batch size {batch_size} must be divisible by the {world_size} processes")
        if sampling not in SAMPLING:
            raise UsageError(f"sampling must be one of {', '.join(SAMPLING)}, not {sampling!r}")
        if len(images) == 0:
            raise UsageError("no training image")
        if margin < 0:
            raise UsageError(f"margin must be >= 0, got {margin}")
        self.margin = int(margin) if degradation is not None else 0
        crop = patch_size + 2 * self.margin  # the window cut from each image (patch + margin)
        too_small = [i for i, a in enumerate(images.lr) if min(a.shape[:2]) < crop]
        if too_small:
            i = too_small[0]
            raise UsageError(
                f"{len(too_small)} training images are smaller than a {crop * images.scale} px HR "
                f"window (first: {images.paths[i] or f'image {i}'}, HR {images.hr[i].shape[1]}x"
                f"{images.hr[i].shape[0]}): scan with min_hr_size >= {crop * images.scale}"
            )
        self.images = images
        self.scale = images.scale
        self.batch_size = int(batch_size)
        self.patch_size = int(patch_size)
        self.steps = int(steps)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.local_batch = self.batch_size // self.world_size
        self.sampling = sampling
        self.augment = bool(augment)
        self.stream = stream
        self.degradation = degradation
        sizes = torch.tensor([a.shape[:2] for a in images.lr], dtype=torch.int64)
        self._nx = sizes[:, 1] - crop + 1
        self._positions = (sizes[:, 0] - crop + 1) * self._nx
        self._ends = torch.cumsum(self._positions, 0)
        self._total_positions = int(self._ends[-1])

    def __len__(self) -> int:
        return self.steps

    def plan(self, step: int) -> BatchPlan:
        """The random choices of the *global* batch at ``step`` (all ``batch_size`` samples).

        Draw order, from ``step_generator(seed, step)``: the image/position draw (one int64 per
        sample in ``"area"`` mode; an image index then a float64 in ``"uniform"`` mode), then the
        (B, 3) flip bits.
        """
        g = step_generator(self.seed, step, self.stream)
        b = self.batch_size
        if self.sampling == "area":
            k = torch.randint(0, self._total_positions, (b,), generator=g, dtype=torch.int64)
            image = torch.searchsorted(self._ends, k, right=True)
            offset = k - (self._ends[image] - self._positions[image])
        else:
            image = torch.randint(0, len(self.images), (b,), generator=g, dtype=torch.int64)
            u = torch.rand(b, generator=g, dtype=torch.float64)
            n = self._positions[image]
            offset = torch.minimum((u * n).to(torch.int64), n - 1)
        flips = torch.randint(0, 2, (b, 3), generator=g, dtype=torch.int64)
        if not self.augment:
            flips.zero_()
        nx = self._nx[image]
        return BatchPlan(image, offset // nx, offset % nx, flips[:, 0], flips[:, 1], flips[:, 2])

    def __getitem__(self, step: int) -> tuple[Tensor, Tensor]:
        step = operator.index(step)
        if not 0 <= step < self.steps:
            raise IndexError(f"step {step} is outside 0..{self.steps - 1}")
        plan = self.plan(step)
        p, s = self.patch_size, self.scale
        ps = p * s
        lo = self.rank * self.local_batch
        # Cast straight into NCHW float32: with the planar image memory this copies whole rows. In a
        # worker process the batch is made in shared memory, where it has to go anyway.
        lr_t, hr_t = _batch_tensor(self.local_batch, p), _batch_tensor(self.local_batch, ps)
        lr, hr = lr_t.numpy(), hr_t.numpy()
        if self.degradation is not None:
            self._degraded(step, plan, lr, hr)
            return lr_t, hr_t
        for j, i in enumerate(range(lo, lo + self.local_batch)):
            n, y, x = int(plan.image[i]), int(plan.y[i]), int(plan.x[i])
            flags = bool(plan.hflip[i]), bool(plan.vflip[i]), bool(plan.transpose[i])
            lr[j] = augment(self.images.lr[n][y : y + p, x : x + p], *flags).transpose(2, 0, 1)
            ys, xs = y * s, x * s
            hr[j] = augment(self.images.hr[n][ys : ys + ps, xs : xs + ps], *flags).transpose(2, 0, 1)
        # NumPy, not torch, divides: the same float32 division as pclup.images.to_tensor, and no
        # intra-op thread pool (torch's spins at its barriers: 25 times slower on a loaded machine).
        np.divide(lr, np.float32(255), out=lr)
        np.divide(hr, np.float32(255), out=hr)
        return lr_t, hr_t


    def _degraded(self, step: int, plan: BatchPlan, lr: np.ndarray, hr: np.ndarray) -> None:
        """Fill the batch with HR windows' centres and the centres of their degraded LR."""
        assert self.degradation is not None
        p, s, m = self.patch_size, self.scale, self.margin
        ws = (p + 2 * m) * s
        lo = self.rank * self.local_batch
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small convolutions: the intra-op pool costs more than it gains
        try:
            for j, i in enumerate(range(lo, lo + self.local_batch)):
                n, y, x = int(plan.image[i]), int(plan.y[i]), int(plan.x[i])
                flags = bool(plan.hflip[i]), bool(plan.vflip[i]), bool(plan.transpose[i])
                window = self.images.hr[n][y * s : y * s + ws, x * s : x * s + ws]
                g = step_generator(self.seed, step, f"{self.stream}/degradation/{i}")
                chw = torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1)))
                low = self.degradation.apply(chw, s, g, dtype=torch.float32)[:, m : m + p, m : m + p]
                lr[j] = augment(low.numpy().transpose(1, 2, 0), *flags).transpose(2, 0, 1)
                centre = window[m * s : m * s + p * s, m * s : m * s + p * s]
                hr[j] = augment(centre, *flags).transpose(2, 0, 1)
        finally:
            torch.set_num_threads(threads)
        np.divide(hr, np.float32(255), out=hr)


def _batch_tensor(b: int, side: int) -> Tensor:
    t = torch.empty((b, 3, side, side), dtype=torch.float32)
    if get_worker_info() is not None:
        t.share_memory_()
    return t


# --------------------------------------------------------------------------------------------------
# The loader


class StepSampler(Sampler[int]):
    """The steps ``start`` to ``stop - 1``, in order."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = int(start), int(stop)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def default_workers() -> int:
    """Loader worker processes when none is asked for: ``min(4, CPUs - 1)`` when CUDA is available
    and there are more than 2 CPUs, else 0 (batches made in the training process).

    Measured on 2 shared CPU cores (T91 + BSD200 + General100, batches of 16 LR patches of 48 px at
    x4): about 3.5 ms a batch in the training process, against about 1 s for a training step of a
    small EDSR on that CPU (0.4 %). Workers do not make it cheaper there: the training process then
    spends more time receiving each 7.4 MB float32 batch through shared memory than making it, and
    the workers take cores from the model. With a GPU the step is tens of milliseconds, the training
    process mostly waits for the device, and workers (with ``pin_memory``) hide the batch entirely.
    """
    n = _cpu_count()
    return min(4, n - 1) if n > 2 and torch.cuda.is_available() else 0


def _start_method(context: str | None) -> str:
    if context is not None:
        return context
    if sys.platform.startswith("linux"):
        return "fork"
    return multiprocessing.get_start_method(allow_none=False)


def make_loader(
    batches: PatchBatches,
    start_step: int = 0,
    workers: int | None = None,
    *,
    pin_memory: bool | None = None,
    multiprocessing_context: str | None = None,
    prefetch_factor: int | None = None,
) -> DataLoader[tuple[Tensor, Tensor]]:
    """A DataLoader over steps ``start_step`` .. ``len(batches) - 1``, in order, one batch per item.

    Args:
        batches: the :class:`PatchBatches`.
        start_step: the first step (the step a resumed run continues from).
        workers: worker processes; ``None``: :func:`default_workers`. The batches are the same with
            any number of workers.
        pin_memory: page-locked batches for fast host-to-GPU copies; default: when CUDA is available.
        multiprocessing_context: how workers start; default ``"fork"`` on Linux (memory shared
            copy-on-write), the platform's default elsewhere (``spawn`` on macOS and Windows: the
            images are moved into torch shared memory first, see :meth:`TrainImages.share_memory`).
        prefetch_factor: batches each worker prepares ahead (DataLoader's default 2).

    The loader gets its own ``torch.Generator`` so that creating and iterating it never draws from
    the global torch RNG (which a resumed run restores).
    """
    start_step = operator.index(start_step)
    if not 0 <= start_step <= len(batches):
        raise UsageError(f"start step {start_step} is outside 0..{len(batches)}")
    n_workers = default_workers() if workers is None else int(workers)
    if n_workers < 0:
        raise UsageError(f"workers must be >= 0, got {n_workers}")
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    kwargs: dict[str, Any] = {}
    if n_workers > 0:
        method = _start_method(multiprocessing_context)
        if method != "fork":
            batches.images.share_memory()
        kwargs["multiprocessing_context"] = method
        kwargs["persistent_workers"] = True
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = prefetch_factor
    return DataLoader(
        batches,
        batch_size=None,
        sampler=StepSampler(start_step, len(batches)),
        num_workers=n_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(batches.seed),
        **kwargs,
    )

