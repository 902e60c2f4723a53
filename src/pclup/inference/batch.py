"""Which files a run reads and where each output goes.

Inputs are files, folders and glob patterns. A folder contributes the images directly in it, or, with
``recursive``, every image below it, with the sub-folder structure mirrored under the output folder.
Hidden files and folders are skipped, and so are pclup's own outputs (names ending in the run's suffix,
or in ``_x<scale>`` by default), so a second run over the same folder does not upscale its results.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
OUTPUT_STEM = re.compile(r"_x\d+(\.\d+)?$")


@dataclass(frozen=True)
class Job:
    """One input file and the folder-relative path its output keeps."""

    src: Path
    relative: Path  # relative output path without extension change (mirrors the tree under a folder input)


def default_suffix(scale: float) -> str:
    """``_x4`` for 4, ``_x2.5`` for 2.5."""
    return f"_x{scale:g}"


def _is_hidden(path: Path, root: Path) -> bool:
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = path.parts[-1:]
    return any(p.startswith(".") for p in parts)


def _is_own_output(path: Path, suffix: str) -> bool:
    return (bool(suffix) and path.stem.endswith(suffix)) or bool(OUTPUT_STEM.search(path.stem))


def collect_jobs(inputs: list[str], *, recursive: bool, suffix: str) -> list[Job]:
    """Expand INPUT arguments into jobs, in a stable order, each file once.

    Raises:
        UsageError: an input that is neither a file, a folder nor a glob with matches; a folder with no
            images in it.
    """
    jobs: dict[Path, Job] = {}
    for spec in inputs:
        path = Path(spec).expanduser()
        if path.is_file():
            jobs.setdefault(path.resolve(), Job(path, Path(path.name)))
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(
                p
                for p in path.glob(pattern)
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not _is_hidden(p, path)
                and not _is_own_output(p, suffix)
            )
            if not found:
                where = "in or below" if recursive else "in"
                raise UsageError(f"{path}: no images {where} this folder ({', '.join(IMAGE_SUFFIXES)})")
            for p in found:
                jobs.setdefault(p.resolve(), Job(p, p.relative_to(path)))
        elif any(ch in spec for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            found = [p for p in found if not p.name.startswith(".") and not _is_own_output(p, suffix)]
            if not found:
                raise UsageError(f"{spec}: no file matches this pattern")
            for p in found:
                jobs.setdefault(p.resolve(), Job(p, Path(p.name)))
        else:
            raise UsageError(f"{spec}: no such file or folder")
    return list(jobs.values())


AUTO_EXTENSION = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".webp": "webp", ".tif": "tif", ".tiff": "tif"}


def output_extension(src: Path, ext: str) -> str:
    """``ext``, or for ``auto`` the input's own format; BMP and unknown formats become PNG.

    Every format kept by ``auto`` holds what its own inputs can bring (JPEG: no alpha, 8 bits; WebP:
    alpha, 8 bits; PNG and TIFF: alpha, 16 bits), so nothing is lost by keeping it.
    """
    if ext != "auto":
        return ext
    return AUTO_EXTENSION.get(src.suffix.lower(), "png")


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
