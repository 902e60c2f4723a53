"""The standard test sets (Set5, Set14, B100, Urban100, Manga109) and folders of HR images.

A named set is looked up, in order, in ``--data-dir``, in ``$PCLUP_DATA``, in ``../shared/data`` beside
the working directory, and finally on the Hugging Face Hub: the dataset repos ``eugenesiow/<Set>`` hold
``data/<Set>_HR.tar.gz``, which is downloaded into the Hub cache and extracted once next to it. Extraction
refuses any member that would land outside its folder (tarfile's ``data`` filter, plus our own check).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import HubError, PclupError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# canonical name -> (folder names tried under a data dir, Hub dataset repo, archive inside it)
KNOWN_SETS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "Set5": (("Set5",), "eugenesiow/Set5", "data/Set5_HR.tar.gz"),
    "Set14": (("Set14",), "eugenesiow/Set14", "data/Set14_HR.tar.gz"),
    "B100": (("B100", "BSD100", "BSDS100"), "eugenesiow/BSD100", "data/BSD100_HR.tar.gz"),
    "Urban100": (("Urban100",), "eugenesiow/Urban100", "data/Urban100_HR.tar.gz"),
    "Manga109": (("Manga109",), "eugenesiow/Manga109", "data/Manga109_HR.tar.gz"),
}
ALIASES = {"bsd100": "B100", "bsds100": "B100", "b100": "B100"}


@dataclass(frozen=True)
class Dataset:
    """A set of HR images: its display name and the image files, sorted by name."""

    name: str
    files: tuple[Path, ...]


def canonical_name(name: str) -> str | None:
    """``"Set5"`` for ``set5``, ``"B100"`` for ``BSD100``; None when ``name`` is not a known set."""
    key = name.lower()
    if key in ALIASES:
        return ALIASES[key]
    return next((k for k in KNOWN_SETS if k.lower() == key), None)


def image_files(folder: Path) -> list[Path]:
    """Images anywhere below ``folder`` (hidden files and folders skipped), sorted by relative path."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def data_dirs(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Folders searched for named sets, in order."""
    dirs = [Path(data_dir)] if data_dir else []
    if os.environ.get("PCLUP_DATA"):
        dirs.append(Path(os.environ["PCLUP_DATA"]))
    dirs.append(Path.cwd().parent / "shared" / "data")
    return dirs


def resolve_dataset(spec: str, data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """A named set or a folder of HR images.

    Raises:
        UsageError: an unknown name (the message lists the known ones) or a folder with no images.
        HubError: a named set found nowhere locally and not obtainable from the Hub (offline).
    """
    path = Path(spec).expanduser()
    name = canonical_name(spec)
    if path.is_dir() and (name is None or os.sep in spec or spec.startswith(".")):
        files = image_files(path)
        if not files:
            raise UsageError(f"{path}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
        return Dataset(path.name, tuple(files))
    if name is None:
        raise UsageError(
            f"unknown test set '{spec}': known sets are {', '.join(KNOWN_SETS)} (or give a folder of HR images)"
        )
    folders, _, _ = KNOWN_SETS[name]
    for base in data_dirs(data_dir):
        for folder in folders:
            candidate = base / folder
            if candidate.is_dir():
                files = image_files(candidate)
                if files:
                    return Dataset(name, tuple(files))
    return Dataset(name, tuple(image_files(hub_dataset(name, data_dirs(data_dir)))))


def hub_dataset(name: str, searched: list[Path]) -> Path:
    """Download (or find in the Hub cache) and extract the set's HR archive; the extracted folder."""
    from .hub import hub_file

    _, repo_id, archive = KNOWN_SETS[name]
    try:
        tarball = hub_file(repo_id, archive, repo_type="dataset")
    except HubError as e:
        where = ", ".join(str(d) for d in searched)
        raise HubError(
            f"test set {name} is not in {where} and cannot be downloaded ({e}); "
            f"put its HR images in <data-dir>/{name}/ and pass --data-dir or set PCLUP_DATA"
        ) from None
    target = tarball.parent / (tarball.name.split(".")[0] + ".extracted")
    if not (target / ".complete").is_file():
        extract_tarball(tarball, target)
    files = image_files(target)
    if not files:
        raise PclupError(f"{tarball}: the archive holds no images")
    return target


def extract_tarball(tarball: Path, target: Path) -> None:
    """Extract ``tarball`` into ``target`` safely and atomically.

    Members with absolute paths, ``..`` components, links pointing outside, or device files are refused
    (the whole archive is), using tarfile's ``data`` filter where Python has it and our own check always.
    The archive is unpacked into a temporary sibling folder and renamed into place when complete.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        try:
            with tarfile.open(tarball) as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member, tmp, tarball)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, members=members, filter="data")
                else:  # Python < 3.10.12 / 3.11.4: our own check above is the guard
                    tar.extractall(tmp, members=members)  # noqa: S202
        except (tarfile.TarError, OSError, EOFError) as e:
            raise PclupError(f"{tarball}: cannot extract ({e})") from None
        (tmp / ".complete").write_text("ok")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_member(member: tarfile.TarInfo, root: Path, tarball: Path) -> None:
    dest = (root / member.name).resolve()
    if member.name.startswith(("/", "\\")) or not dest.is_relative_to(root.resolve()):
        raise PclupError(f"{tarball}: refused: member '{member.name}' would be written outside the folder")
    if member.issym() or member.islnk():
        link = (dest.parent / member.linkname).resolve() if member.issym() else (root / member.linkname).resolve()
        if not link.is_relative_to(root.resolve()):
            raise PclupError(f"{tarball}: refused: link '{member.name}' points outside the folder")
    if member.isdev() or member.isfifo():
        raise PclupError(f"{tarball}: refused: member '{member.name}' is a device or pipe")
