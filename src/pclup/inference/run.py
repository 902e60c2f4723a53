"""Upscale many files with one model: the run behind ``pclup upscale``.

:func:`plan_upscale` checks every setting, loads the model and decides every output path before any
work (see :mod:`pclup.inference.batch`); :meth:`UpscaleRun.run` then upscales the files in order and
reports through callbacks. A file that fails does not stop the others: its error is in its
:class:`~pclup.inference.upscale.FileResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import UsageError
from ..weights import FAMILIES, default_model_name, family_scale
from .batch import Job, Unreadable, default_suffix, plan_outputs, precheck_upscale
from .media import DEFAULT_CRF, check_settings, is_video, parse_tile

if TYPE_CHECKING:  # the modules that do the work import torch: loaded once the run is checked
    from ..weights import LoadedModel
    from .upscale import FileResult, Progress, Upscaler

STATUSES = ("ok", "skipped", "failed")

#: The largest output written in the background while the next file upscales (a 4000x3000 8-bit RGB image
#: is 36 MB): bigger ones are written before the next file starts, so that two never share the memory.
OVERLAP_BYTES = 128 * 2**20


@dataclass
class UpscaleRun:
    """A checked run: the model on its device, the output scale, every input with its output path, and
    the files of input folders that pclup cannot read (passed over, each with the reason)."""

    upscaler: Upscaler
    scale: float
    jobs: list[Job]
    outputs: list[Path]
    unreadable: list[Unreadable] = field(default_factory=list)

    def describe(self) -> str:
        """One line: model, device, precision, tiling, output scale."""
        return f"{self.upscaler.describe()}, output x{self.scale:g}"

    def run(
        self,
        *,
        overwrite: bool = False,
        quality: int = 95,
        pix_fmt: str = "yuv420p",
        crf: int = DEFAULT_CRF,
        on_file: Callable[[Job], None] | None = None,
        on_result: Callable[[FileResult], None] | None = None,
        on_tile: Progress | None = None,
        on_frame: Progress | None = None,
        png_level: int | None = None,
    ) -> list[FileResult]:
        """Upscale every job in order (see :func:`~pclup.inference.upscale.upscale_file`; videos:
        :func:`~pclup.inference.video.upscale_video_file`, encoded at ``pix_fmt`` and ``crf``).

        ``on_file`` is called before each file, ``on_result`` with each file's result, ``on_tile`` with
        ``(done, total)`` over the tiles of each model pass of an image, ``on_frame`` with ``(done,
        expected)`` over the frames of a video.

        Raises:
            UsageError: ``pix_fmt`` or ``crf`` out of bounds.
        """
        from .upscale import FileResult, upscale_file_pending
        from .video import upscale_video_file

        check_settings(pix_fmt, crf)
        results: list[FileResult] = []

        def report(result: FileResult) -> None:
            results.append(result)
            if on_result is not None:
                on_result(result)

        # One file's encoding and writing overlaps the network's work on the next (the encoders release the
        # GIL); at most one write is in flight, and only of an output small enough to hold beside the next.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pclup-write") as writer:
            pending: Future[FileResult] | None = None
            for i, (job, dst) in enumerate(zip(self.jobs, self.outputs, strict=True)):
                if on_file is not None:
                    on_file(job)
                if is_video(job.src):
                    if pending is not None:
                        report(pending.result())
                        pending = None
                    report(upscale_video_file(
                        self.upscaler, job.src, dst, scale=self.scale, overwrite=overwrite, pix_fmt=pix_fmt,
                        crf=crf, progress=on_frame,
                    ))
                    continue
                step = upscale_file_pending(
                    self.upscaler, job.src, dst, scale=self.scale, overwrite=overwrite, quality=quality,
                    progress=on_tile, png_level=png_level,
                )
                if pending is not None:
                    report(pending.result())
                    pending = None
                if isinstance(step, FileResult):
                    report(step)
                elif i + 1 < len(self.jobs) and step.nbytes <= OVERLAP_BYTES:
                    pending = writer.submit(step.finish)
                else:
                    report(step.finish())
            if pending is not None:
                report(pending.result())
        return results

    def describe_unreadable(self, limit: int = 10) -> str | None:
        """One line naming the folder files pclup passed over and why (at most ``limit`` named), or None."""
        if not self.unreadable:
            return None
        n = len(self.unreadable)
        named = ", ".join(f"{u.path.name} ({u.reason})" for u in self.unreadable[:limit])
        more = f" and {n - limit} more" if n > limit else ""
        return f"skipped {n} file{'s' if n != 1 else ''} pclup cannot read: {named}{more}"

    def summary(self, results: Sequence[FileResult]) -> dict[str, Any]:
        """The JSON summary of a run: the model, device and precision, every file, the counts, and the
        folder files pclup could not read (``unreadable``: path and reason)."""
        loaded = self.upscaler.loaded
        return {
            "pclup_version": __version__,
            "model": loaded.name,
            "source": loaded.source,
            "architecture": loaded.arch.name,
            "model_scale": loaded.scale,
            "scale": self.scale,
            "device": self.upscaler.torch_device.type,
            "precision": self.upscaler.precision_name,
            "files": [r.to_json() for r in results],
            **count_statuses(results),
            "unreadable": [u.to_json() for u in self.unreadable],
        }


def count_statuses(results: Sequence[FileResult]) -> dict[str, int]:
    """``{"ok": n, "skipped": n, "failed": n}``."""
    return {status: sum(r.status == status for r in results) for status in STATUSES}


def denoised_model(model: str | None, scale: float | None, denoise: float) -> LoadedModel:
    """``default-xS`` and ``photo-xS`` blended ``1 - denoise`` to ``denoise`` (see :func:`plan_upscale`)."""
    if model is not None and model.lower() not in ("default", "photo"):
        raise UsageError(f"--denoise blends the default and photo models: drop -m {model}, or use -m default "
                         "or -m photo")
    if not (math.isfinite(denoise) and 0 <= denoise <= 1):
        raise UsageError(f"--denoise {denoise:g} must be between 0 (all detail) and 1 (full clean-up)")
    from ..weights import blend_models, load_model

    s = family_scale("photo", scale)
    name = f"photo-x{s} (denoise {denoise:g})"
    if denoise in (0, 1):  # an end of the dial is that model itself (and runs as it does, precision included)
        import dataclasses

        return dataclasses.replace(load_model(f"{'photo' if denoise else 'default'}-x{s}"), name=name)
    clean, photo = load_model(f"default-x{s}"), load_model(f"photo-x{s}")
    return blend_models(clean, photo, denoise, name=name)


def plan_upscale(
    inputs: Sequence[str | Path],
    *,
    model: str | None = None,
    scale: float | None = None,
    output: Path | None = None,
    suffix: str | None = None,
    ext: str = "auto",
    tile: int | str = "auto",
    tile_overlap: int = 16,
    device: str = "auto",
    precision: str = "auto",
    tta: bool = False,
    recursive: bool = False,
    denoise: float | None = None,
) -> UpscaleRun:
    """Check the settings, load the model, and plan every output before any work.

    Args:
        inputs: Image or video files, folders or glob patterns.
        model: Any model spec (see :func:`pclup.load_model`); None or ``"default"``: the packaged
            default model whose scale reaches ``scale``.
        scale: Output scale, any factor >= 1; None: the model's own.
        output: Output folder, or for one input the output file; None: next to each input.
        suffix: Appended to output file names; None: ``_x<scale>``.
        ext: ``auto`` (the input's format where it can hold the result), ``png``, ``jpg``, ``webp``,
            ``tif`` or ``avif``.
        tile, tile_overlap, device, precision, tta: See :class:`~pclup.inference.upscale.Upscaler`.
        recursive: Descend into sub-folders and mirror them under ``output``.
        denoise: 0 to 1: the weights of ``default-xS`` (0: all the detail, noise included) and
            ``photo-xS`` (1: full clean-up of noise, blur and JPEG) blended, at the photo models' scale for
            ``scale``; only with ``model`` None, ``"default"`` or ``"photo"``.

    Raises:
        UsageError: a bad setting, input or output path, or outputs that would collide.
        PclupError: the model cannot be loaded.
    """
    unreadable: list[Unreadable] = []
    jobs = precheck_upscale(  # flags, model name, inputs: before anything is loaded
        [str(i) for i in inputs], model=model, scale=scale, suffix=suffix, ext=ext, tile=tile,
        recursive=recursive, denoise=denoise, unreadable=unreadable,
    )
    from ..weights import load_model

    tile = parse_tile(tile)
    if denoise is not None:
        loaded = denoised_model(model, scale, denoise)
    else:
        if model is None or model.lower() in FAMILIES:  # the packaged model whose scale reaches -s
            model = default_model_name(scale, (model or "default").lower())
        loaded = load_model(model, scale=round(scale) if scale and float(scale).is_integer() else None)
    out_scale = scale or float(loaded.scale)
    suffix = default_suffix(out_scale) if suffix is None else suffix
    outputs = plan_outputs(jobs, output=output, suffix=suffix, ext=ext, scale=out_scale)  # before any work
    from .upscale import Upscaler

    upscaler = Upscaler(
        loaded, device=device, precision=precision, tile=tile, tile_overlap=tile_overlap, tta=tta
    )
    return UpscaleRun(upscaler, out_scale, jobs, outputs, unreadable)
