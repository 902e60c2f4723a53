"""Which files a run reads and where each output goes.

Inputs are files, folders and glob patterns. A folder contributes the images directly in it, or, with
``recursive``, every image below it, with the sub-folder structure mirrored under the output folder.
Hidden files and folders are skipped, and so are pclup's own outputs (names ending in the run's suffix,
or in ``_x<scale>`` by default), so a second run over the same folder does not upscale its results.
Other files in a folder that pclup cannot read are listed with the reason (:class:`Unreadable`), except
known sidecar files (``.xmp``, ``.aae``, ``.json``, ``.txt``), which are passed over silently.
Neither a folder walk nor a ``**`` in a pattern enters a linked folder: a link can lead out of the
folder, or in a cycle back into it.

:func:`plan_outputs` decides every output path before any work, and refuses a run whose outputs would
collide: two inputs written to one file, or an output that would replace another input.
"""

from __future__ import annotations

import fnmatch
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage

from .. import images
from ..errors import UsageError
from ..images import IMAGE_SUFFIXES
from ..images.formats import READ_SUFFIXES, SIDECAR_SUFFIXES
from .media import VIDEO_EXTRA, VIDEO_SUFFIXES, is_video
from .media import available as video_available

OUTPUT_STEM = re.compile(r"_x\d+(\.\d+)?$")
#: Suffixes that name an image file; ``-o`` with one of them names a file, not a folder. Those pclup
#: cannot write (GIF, AVIF, HEIC...) are here so that ``-o out.avif`` is refused, not made a folder.
IMAGE_LIKE_SUFFIXES = frozenset(
    IMAGE_SUFFIXES
    + (".gif", ".avif", ".heic", ".heif", ".jxl", ".jp2", ".j2k", ".ico", ".tga", ".psd", ".svg", ".exr",
       ".hdr", ".qoi", ".pbm", ".pgm", ".ppm", ".pnm", ".dng", ".raw")
)
_MAGIC = re.compile(r"[*?[]")
_MAX_NAMED = 10  # clashes named in one message


@dataclass(frozen=True)
class Job:
    """One input file and the folder-relative path its output keeps."""

    src: Path
    relative: Path  # relative output path without extension change (mirrors the tree under a folder input)


@dataclass(frozen=True)
class Unreadable:
    """A file in an input folder that pclup passes over, and why."""

    path: Path
    reason: str

    def to_json(self) -> dict[str, str]:
        """``{"path": ..., "reason": ...}``."""
        return {"path": str(self.path), "reason": self.reason}


def default_suffix(scale: float) -> str:
    """``_x4`` for 4, ``_x2.5`` for 2.5."""
    return f"_x{scale:g}"


def check_suffix(suffix: str) -> None:
    """Refuse a ``--suffix`` that is not plain text for a file name: it could put outputs elsewhere."""
    if "/" in suffix or "\\" in suffix or any(ord(ch) < 32 for ch in suffix):
        raise UsageError(
            f"--suffix {suffix!r} must not contain '/', '\\' or control characters: it is added to file names"
        )


def _is_own_output(path: Path, suffix: str) -> bool:
    return (bool(suffix) and path.stem.endswith(suffix)) or bool(OUTPUT_STEM.search(path.stem))


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:
        return []


def _real_subfolders(top: Path) -> Iterator[Path]:
    """``top`` and every folder below it, skipping hidden ones and never entering a link."""
    stack = [top]
    while stack:
        folder = stack.pop()
        yield folder
        below = []
        for entry in _entries(folder):
            try:
                if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                    below.append(folder / entry.name)
            except OSError:
                continue
        stack.extend(sorted(below, reverse=True))


def _match(base: Path, parts: tuple[str, ...]) -> Iterator[Path]:
    """Paths below ``base`` matching the pattern components ``parts`` (``**``: any depth)."""
    if not parts:
        yield base
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        for folder in _real_subfolders(base):
            yield from _match(folder, rest or ("*",))
    elif _MAGIC.search(head):
        for entry in _entries(base):
            if (head.startswith(".") or not entry.name.startswith(".")) and fnmatch.fnmatch(entry.name, head):
                yield from _match(base / entry.name, rest)
    else:
        yield from _match(base / head, rest)


def expand_pattern(pattern: str) -> list[Path]:
    """The files a glob pattern matches, sorted: ``*``, ``?`` and ``[...]`` within one name, ``**`` for
    any number of folders. Hidden names match only a pattern that starts with a dot; ``**`` enters no
    hidden folder and no link to a folder, so links cannot lead it in a cycle."""
    path = Path(pattern).expanduser()
    parts = path.parts[1:] if path.anchor else path.parts
    return sorted({p for p in _match(Path(path.anchor), parts) if p.is_file()})


def _folder_files(path: Path, *, recursive: bool, suffix: str, unreadable: list[Unreadable]) -> list[Path]:
    """The images (and videos, with the extra ``pclup[video]``) of a folder input, sorted; the other
    files (not hidden, not pclup's own outputs, not sidecars) go to ``unreadable``."""
    found = []
    videos = None
    for p in sorted(_match(path, ("**", "*") if recursive else ("*",))):
        if not p.is_file() or _is_own_output(p, suffix):
            continue
        ext = p.suffix.lower()
        if ext in READ_SUFFIXES:
            found.append(p)
        elif ext in VIDEO_SUFFIXES:
            videos = video_available() if videos is None else videos
            if videos:
                found.append(p)
            else:
                unreadable.append(Unreadable(p, f"a video: {VIDEO_EXTRA}"))
        elif ext not in SIDECAR_SUFFIXES:
            unreadable.append(Unreadable(p, "unsupported format"))
    return found


def collect_jobs(
    inputs: list[str], *, recursive: bool, suffix: str, unreadable: list[Unreadable] | None = None
) -> list[Job]:
    """Expand INPUT arguments into jobs, in a stable order, each file once.

    Files of an input folder that pclup cannot read are appended to ``unreadable``, when given, each
    once (see :class:`Unreadable`); a file named on its own or matched by a pattern is always a job.

    Raises:
        UsageError: an input that is neither a file, a folder nor a glob with matches; a folder with no
            images in it.
    """
    jobs: dict[Path, Job] = {}
    passed: dict[Path, Unreadable] = {}
    for spec in inputs:
        path = Path(spec).expanduser()
        if path.is_file():
            jobs.setdefault(path.resolve(), Job(path, Path(path.name)))
        elif path.is_dir():
            others: list[Unreadable] = []
            found = _folder_files(path, recursive=recursive, suffix=suffix, unreadable=others)
            if not found:
                where = "in or below" if recursive else "in"
                raise UsageError(f"{path}: no images {where} this folder ({', '.join(IMAGE_SUFFIXES)})")
            for u in others:
                passed.setdefault(u.path.resolve(), u)
            for p in found:
                jobs.setdefault(p.resolve(), Job(p, p.relative_to(path)))
        elif _MAGIC.search(spec):
            found = [p for p in expand_pattern(spec) if not _is_own_output(p, suffix)]
            if not found:
                raise UsageError(f"{spec}: no file matches this pattern")
            for p in found:
                jobs.setdefault(p.resolve(), Job(p, Path(p.name)))
        else:
            raise UsageError(f"{spec}: no such file or folder")
    if unreadable is not None:
        unreadable.extend(u for key, u in passed.items() if key not in jobs)
    return list(jobs.values())


def _input_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the file's header; None when it cannot be read (the run then reports
    that file's error)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's size and EXIF warnings: reading the file says them
        try:
            with PILImage.open(path) as im:
                return im.size
        except Exception:  # noqa: BLE001 - any unreadable file fails later, on its own
            return None


def output_extension(src: Path, ext: str, scale: float) -> str:
    """``ext``, or for ``auto`` the input's own format where it can hold the output (see
    :func:`pclup.images.choose_extension`), else PNG: BMP, GIF, HEIC and unknown formats become PNG,
    and so does a WebP, JPEG or AVIF input whose output at ``scale`` would be too large for its format.
    """
    if is_video(src):  # a video keeps its container, whatever ``ext`` says
        return src.suffix.lower().lstrip(".")
    if ext != "auto":
        return images.choose_extension(None, ext)
    fmt = READ_SUFFIXES.get(src.suffix.lower())
    size = _input_size(src)
    out = None if size is None else upscaled_size(size[1], size[0], scale)[::-1]
    return images.choose_extension(fmt, ext, size=out)


def output_path(job: Job, *, output: Path | None, single_file_output: bool, suffix: str, ext: str) -> Path:
    """Where ``job``'s result goes.

    ``output`` None: next to the input. ``single_file_output``: ``output`` is the file itself.
    Otherwise ``output`` is a folder and the input's relative path is kept below it.
    """
    if single_file_output and output is not None:
        return output
    name = f"{job.relative.stem}{suffix}.{ext}"
    if output is None:
        return job.src.with_name(name)
    return output / job.relative.parent / name


def is_file_output(output: Path | None, jobs: list[Job]) -> bool:
    """Whether ``-o`` names the output file itself: it has an image (or video) suffix and is not a folder.

    Raises:
        UsageError: such a name with several inputs, or with a suffix pclup cannot write; a video named
            for an image input or the other way round; ``-o`` an existing file that is not named as an
            image.
    """
    if output is None or output.is_dir():
        return False
    named_video = output.suffix.lower() in VIDEO_SUFFIXES
    if named_video and len(jobs) > 1:
        raise UsageError(f"--output {output} names one file, but {len(jobs)} inputs need a folder")
    if len(jobs) == 1 and (named_video or output.suffix.lower() in IMAGE_LIKE_SUFFIXES):
        if named_video != is_video(jobs[0].src):
            kind, want = ("a video", ", ".join(VIDEO_SUFFIXES)) if is_video(jobs[0].src) else ("an image", "")
            raise UsageError(
                f"--output {output}: the input {jobs[0].src} is {kind}; name the output with "
                + (want or "an image suffix")
            )
        if named_video:
            return True
    writable = ", ".join(f".{e}" for e in images.OUTPUT_EXTENSIONS)
    if output.suffix.lower() in IMAGE_LIKE_SUFFIXES:
        if len(jobs) > 1:
            raise UsageError(f"--output {output} names one file, but {len(jobs)} inputs need a folder")
        if output.suffix.lower().lstrip(".") not in images.OUTPUT_EXTENSIONS:
            raise UsageError(f"--output {output}: pclup cannot write {output.suffix} images; use {writable}")
        return True
    if output.exists():
        if len(jobs) > 1:
            raise UsageError(f"--output {output} is a file, but {len(jobs)} inputs need a folder")
        raise UsageError(
            f"--output {output} is an existing file without an image suffix: name a folder, or a file ending "
            f"in {writable}"
        )
    return False


def _blocking_file(folder: Path) -> Path | None:
    """The nearest existing one of ``folder`` and its parents, when it is not a folder."""
    for p in (folder, *folder.parents):
        if os.path.lexists(p):
            return None if p.is_dir() else p
    return None


def _ignores_case(folder: Path) -> bool:
    """Whether the file system holding ``folder`` (or its nearest existing parent) ignores case in names."""
    for p in (folder, *folder.parents):
        other = p.with_name(p.name.swapcase()) if p.name else p
        if other != p and p.exists():
            try:
                return os.path.samefile(p, other)
            except OSError:
                return False
    return False


def plan_outputs(jobs: list[Job], *, output: Path | None, suffix: str, ext: str, scale: float) -> list[Path]:
    """The output path of every job, in order, checked before any work (``scale``: the output's, which
    ``ext="auto"`` needs to know whether the input's format can hold the output).

    Raises:
        UsageError: ``-o`` cannot be what it is used as (see :func:`is_file_output`); a file stands where
            an output folder must be; two inputs would be written to one output (compared as the file
            system compares names: ignoring case where it does); an output would replace another input.
    """
    single = is_file_output(output, jobs)
    dsts = []
    for job in jobs:
        dst_ext = output_extension(job.src, ext, scale)
        dsts.append(output_path(job, output=output, single_file_output=single, suffix=suffix, ext=dst_ext))
    folds: dict[Path, bool] = {}

    def key(path: Path) -> str:
        real = path.resolve()
        if real.parent not in folds:
            blocker = _blocking_file(path.parent)
            if blocker is not None:
                raise UsageError(f"cannot write {path}: {blocker} is a file, not a folder")
            folds[real.parent] = _ignores_case(real.parent)
        name = os.path.normcase(str(real))
        return name.casefold() if folds[real.parent] else name

    inputs = {key(job.src): job.src for job in jobs}
    writers: dict[str, list[int]] = {}
    problems = []
    for i, (job, dst) in enumerate(zip(jobs, dsts, strict=True)):
        k = key(dst)
        writers.setdefault(k, []).append(i)
        if k in inputs and k != key(job.src):  # its own input: refused by upscale_file
            problems.append(f"the output of {job.src} would replace the input {inputs[k]}")
    for indices in writers.values():
        if len(indices) > 1:
            names = ", ".join(str(jobs[i].src) for i in indices)
            problems.append(f"{names} would be written to the same file {dsts[indices[0]]}")
    if problems:
        more = f" and {len(problems) - _MAX_NAMED} more" if len(problems) > _MAX_NAMED else ""
        raise UsageError(
            "outputs would collide: " + "; ".join(problems[:_MAX_NAMED]) + more
            + " (rename the inputs, or use another --suffix or -o)"
        )
    return dsts


def upscaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """``(round(h * scale), round(w * scale))``, at least one pixel each."""
    return max(1, round(h * scale)), max(1, round(w * scale))


#: ``--ext`` values.
EXTS = ("auto", "png", "jpg", "webp", "tif", "avif")
# No image format pclup writes holds a side over 2**32 - 1 pixels (TIFF; PNG: 2**31 - 1), so a scale
# beyond it could not be stored even for a 1-pixel input.
MAX_SCALE = 2**32 - 1


def precheck_upscale(
    inputs: list[str],
    *,
    model: str | None,
    scale: float | None,
    suffix: str | None,
    ext: str,
    tile: int | str,
    recursive: bool,
    denoise: float | None = None,
    unreadable: list[Unreadable] | None = None,
) -> list[Job]:
    """Every check of an upscale run that needs no network and no tensor, in the order the run makes them:
    the flags, the model's name, the inputs. Returns the jobs. Imports nothing heavy, so that a mistyped
    flag, model or file is answered at once.

    Raises:
        UsageError, ModelFileError, UnknownModelError: as :func:`~pclup.inference.run.plan_upscale`.
    """
    import math

    from ..weights import FAMILIES, check_model_spec, default_model_name
    from .media import parse_tile

    if ext not in EXTS:
        raise UsageError(f"--ext '{ext}' is not one of {', '.join(EXTS)}")
    if scale is not None and not (math.isfinite(scale) and scale >= 1):
        raise UsageError(f"--scale {scale:g} must be a finite number >= 1")
    if scale is not None and scale > MAX_SCALE:
        raise UsageError(
            f"--scale {scale:g} is too large: no image format holds a side of more than {MAX_SCALE} pixels"
        )
    parse_tile(tile)
    if suffix is not None:
        check_suffix(suffix)
    if denoise is not None:
        if model is not None and model.lower() not in ("default", "photo"):
            raise UsageError(f"--denoise blends the default and photo models: drop -m {model}, or use -m "
                             "default or -m photo")
        if not (math.isfinite(denoise) and 0 <= denoise <= 1):
            raise UsageError(f"--denoise {denoise:g} must be between 0 (all detail) and 1 (full clean-up)")
    elif model is not None and model.lower() not in FAMILIES:
        check_model_spec(model, round(scale) if scale and float(scale).is_integer() else None)
    elif model is not None:
        check_model_spec(default_model_name(scale, model.lower()))
    return collect_jobs(inputs, recursive=recursive, suffix=suffix or "", unreadable=unreadable)
