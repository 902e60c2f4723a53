"""The standard test sets (Set5, Set14, B100, Urban100, Manga109) and folders of HR images.

A named set is looked up, in order, in ``--data-dir``, in ``$PCLUP_DATA``, in a ``shared/data`` folder
beside the working directory (developers: beside the source checkout, run from its root), and finally on
the Hugging Face Hub: the dataset repos ``eugenesiow/<Set>`` hold ``data/<Set>_HR.tar.gz``, which is
downloaded into the Hub cache and extracted once next to it. A test set is plain image files, so extraction
writes regular files only, by pclup's own code: an archive holding a link, a device, a pipe, or a name that
leaves its folder is refused whole (see :func:`extract_tarball`).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import HubError, PclupError, UsageError
from .images import IMAGE_SUFFIXES, image_files

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
            f"unknown test set '{spec}': known sets are {', '.join(KNOWN_SETS)} "
            "(or give a folder of HR images)"
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
    """Download (or find in the Hub cache) and extract the set's HR archive; the extracted folder.

    A folder that :func:`extract_tarball` did not finish (no ``.complete`` marker, or one written by an
    older extractor that followed links) is removed and extracted again.
    """
    from .weights import hub_file

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
    if not is_extracted(target):
        _remove(target)
        extract_tarball(tarball, target)
    files = image_files(target)
    if not files:
        raise PclupError(f"{tarball}: the archive holds no images")
    return target


# What a test-set archive may hold. The largest standard set (Manga109) is about 110 images of a few MB.
MAX_MEMBERS = 10_000
MAX_FILE_BYTES = 128 << 20
MAX_TOTAL_BYTES = 2 << 30

COMPLETE = ".complete"
_COMPLETE_TEXT = "pclup extraction: regular files only\n"  # older versions wrote "ok" and must be redone
_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def is_extracted(target: Path) -> bool:
    """Whether ``target`` is a finished extraction by :func:`extract_tarball`."""
    marker = target / COMPLETE
    try:
        if target.is_symlink() or not stat.S_ISREG(marker.lstat().st_mode):
            return False
        return marker.read_text(encoding="utf-8") == _COMPLETE_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def extract_tarball(tarball: Path, target: Path) -> None:
    """Extract the image files of ``tarball`` into ``target``, safely and atomically.

    Only regular files are written, by our own code, each opened with ``O_EXCL | O_NOFOLLOW`` in a folder
    we created and whose real path is checked to lie inside the extraction folder; folders are made by us
    (the archive's own folder entries only name them). The whole archive is refused (:class:`PclupError`)
    if a member is a symbolic or hard link, a device or a pipe, has an absolute name or a ``..`` part,
    appears twice, or exceeds :data:`MAX_FILE_BYTES`, or the archive exceeds :data:`MAX_MEMBERS` or
    :data:`MAX_TOTAL_BYTES` (claimed sizes are checked before anything is read, and the stream is cut off
    past that much data, headers included). A gzip or plain tar archive is read once, as a stream, to its
    end, so that a damaged one (checksum, truncation) is refused too. Everything is written into a temporary
    sibling folder, ``.complete`` is written last, and the folder is renamed into place: on any failure
    nothing is left behind and ``target`` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        try:
            with open(tarball, "rb") as raw, _decompressed(raw) as data:
                stream = _Capped(data, tarball)
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    _extract_members(tar, tmp, tarball)
                # read on to the end, where a compressed archive's checksum is verified: a damaged
                # download fails here rather than leaving damaged images
                while stream.read(_CHUNK):
                    pass
            (tmp / COMPLETE).write_text(_COMPLETE_TEXT, encoding="utf-8")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise PclupError(f"{tarball}: cannot extract: the archive is damaged ({e})") from None
        except OSError as e:
            raise PclupError(f"{tarball}: cannot extract ({e.strerror or e})") from None
        _remove(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_extracted(target):  # another process finished first: use its folder
                raise PclupError(f"{target}: cannot move the extracted files into place") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extract_members(tar: tarfile.TarFile, root: Path, tarball: Path) -> None:
    real_root = os.path.realpath(root, strict=True)
    total = 0
    for count, member in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise _refused(tarball, f"more than {MAX_MEMBERS} members, too many for a test set")
        parts = _member_parts(member.name, tarball)
        if member.isdir():
            _make_folders(root, parts, tarball)
            continue
        if not member.isreg() or not parts:
            why = _kind(member) if parts else "a file without a name"
            raise _refused(tarball, f"member '{member.name}' is {why}; a test set holds image files only")
        total += member.size
        if member.size > MAX_FILE_BYTES or total > MAX_TOTAL_BYTES:
            raise _refused(
                tarball,
                f"member '{member.name}' makes the archive too large for a test set ({member.size} bytes; "
                f"at most {MAX_FILE_BYTES >> 20} MiB a file and {MAX_TOTAL_BYTES >> 30} GiB in all)",
            )
        real_parent = os.path.realpath(_make_folders(root, parts[:-1], tarball), strict=True)
        if os.path.commonpath([real_root, real_parent]) != real_root:
            raise _refused(tarball, f"member '{member.name}' would be written outside the folder")
        try:
            fd = os.open(os.path.join(real_parent, parts[-1]), _OPEN_FLAGS, 0o644)
        except FileExistsError:
            raise _refused(tarball, f"member '{member.name}' appears twice") from None
        with os.fdopen(fd, "wb") as out:
            source = tar.extractfile(member)
            assert source is not None  # a regular file (checked above) always has its data
            with source:
                shutil.copyfileobj(source, out, _CHUNK)  # tarfile reads exactly member.size bytes, or raises


def _decompressed(raw: io.BufferedIOBase) -> io.BufferedIOBase:
    """The archive's tar stream: gunzipped if it is gzip (as the Hub's test sets are), else as it is."""
    gzipped = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw


class _Capped(io.RawIOBase):
    """A stream's ``read`` that refuses to give more than a test set's worth of bytes, headers included."""

    def __init__(self, stream: io.BufferedIOBase, tarball: Path) -> None:
        super().__init__()
        self.stream, self.tarball, self.left = stream, tarball, MAX_TOTAL_BYTES + MAX_MEMBERS * 4096 + _CHUNK

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(self.left + 1 if size < 0 else min(size, self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise _refused(self.tarball, f"over {MAX_TOTAL_BYTES >> 30} GiB of data, too much for a test set")
        return data


def _member_parts(name: str, tarball: Path) -> tuple[str, ...]:
    """The path parts of a member name (``/`` or ``\\`` separated, ``.`` dropped); refuses escaping names."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise _refused(tarball, f"member '{name}' has an absolute name")
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    if ".." in parts:
        raise _refused(tarball, f"member '{name}' would be written outside the folder")
    return parts


def _make_folders(root: Path, parts: tuple[str, ...], tarball: Path) -> Path:
    """``root / parts``, creating each folder with our own mkdir; an existing part must be a real folder."""
    folder = root
    for part in parts:
        folder = folder / part
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not stat.S_ISDIR(folder.lstat().st_mode):
                raise _refused(tarball, f"'{folder.relative_to(root)}' is both a file and a folder") from None
    return folder


def _refused(tarball: Path, why: str) -> PclupError:
    return PclupError(f"{tarball}: refused: {why}")


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "a symbolic link"
    if member.islnk():
        return "a hard link"
    if member.isdev():
        return "a device" if not member.isfifo() else "a pipe"
    return f"of an unsupported type ({member.type!r})"


def _remove(path: Path) -> None:
    """Remove a file, link or folder tree at ``path`` if there is one (links are removed, never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


# --------------------------------------------------------------------------------------------------
# Degraded variants of the test sets (``pclup bench --degrade``; the LR itself is made in pclup.bench)

VARIANT_SUFFIXES = {"-real": "realistic"}


def split_variant(name: str) -> tuple[str, str | None]:
    """``("B100", "realistic")`` for ``B100-real``, ``("Set14", "jpeg30")`` for ``Set14-jpeg30``; a name
    without a variant suffix is returned as it is, with None."""
    lower = name.lower()
    for suffix, variant in VARIANT_SUFFIXES.items():
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], variant
    head, sep, tail = name.rpartition("-jpeg")
    if sep and head and tail.isdigit():
        return head, f"jpeg{tail}"
    return name, None


def check_degrade(variant: str | None) -> None:
    """Refuse a degradation name bench cannot apply (before any image is read)."""
    if variant is None or variant == "realistic" or variant.lower().endswith(".toml"):
        return
    quality = variant[4:] if variant.startswith("jpeg") else ""
    if not (quality.isdigit() and 1 <= int(quality) <= 95):
        raise UsageError(
            f"--degrade {variant!r}: use realistic, jpegQ (Q from 1 to 95, e.g. jpeg30) or a .toml file"
        )


def variant_label(variant: str) -> str:
    """The suffix a variant adds to a set's name in results: ``-real``, ``-jpeg30``, ``-<file stem>``."""
    if variant == "realistic":
        return "-real"
    if variant.startswith("jpeg"):
        return f"-{variant}"
    return f"-{Path(variant).stem}"


def precheck_bench(
    models: Sequence[str], sets: Sequence[str], scales: Sequence[int], data_dir: str | Path | None,
    degrade: str | None,
) -> list[tuple[Dataset, str | None]]:
    """The checks of a bench run that need no tensor, in the order it makes them: a model given, the scales,
    the degradation, the model names, the sets (found locally or fetched). Returns each set with its
    variant (None: clean). Imports nothing heavy, so that a mistyped flag, set or model answers at once."""
    from .weights import check_model_spec

    if not models:
        raise UsageError("no model given (-m); use -m bicubic for the baseline")
    for factor in scales:
        if factor < 1 or int(factor) != factor:
            raise UsageError(f"--scale {factor}: bench scales are integers >= 1")
    check_degrade(degrade)
    for spec in models:
        if spec.lower() != "bicubic":
            check_model_spec(spec, scales[0] if len(scales) == 1 else None)
    datasets: list[tuple[Dataset, str | None]] = []
    for name in sets:  # last: a named set missing here is fetched from the Hub
        base, variant = split_variant(name)
        if variant is not None and Path(name).is_dir():  # a folder whose name happens to end like a variant
            base, variant = name, None
        datasets.append((resolve_dataset(base, data_dir), variant or degrade))
    return datasets
