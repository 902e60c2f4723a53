"""Files written whole or not at all, with the permissions any new file gets; and handing freed memory back
to the system (:func:`libc_trim`)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "libc_trim", "umask"]

# link() errors that mean "this file system has no hard links" (EPERM: Linux on FAT; EINVAL: Windows).
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV, errno.EMLINK, errno.EINVAL}
)


def atomic_write(
    path: Path, write: Callable[[IO[bytes]], object], *, overwrite: bool = True, parents: bool = False
) -> bool:
    """Write ``path`` whole or not at all: ``write`` fills a temporary file that then takes the name.

    The temporary file, ``.{name}.pclup-XXXXXXXXXXXX.tmp`` in the same folder, is flushed to disk,
    given the permissions a new file would get (``0o666`` less the umask) or those of the file it
    replaces, and then published as ``path``: renamed over it, or, with ``overwrite=False``,
    hard-linked to it, which fails if ``path`` exists, so that of two writers racing for one name only
    the first wins. On a file system without hard links (FAT, exFAT, some network shares)
    ``overwrite=False`` falls back to checking that ``path`` does not exist and renaming, which leaves a
    short window for a concurrent writer. On any failure, and on an interrupt (Ctrl+C, SIGTERM raised
    as an exception), the temporary file is removed and an existing ``path`` is left as it was.

    Args:
        path: the file to write.
        write: called once with the open temporary file (binary).
        overwrite: replace an existing ``path``; when false, an existing one is left alone.
        parents: create the missing folders above ``path`` (else the folder must exist).

    Returns:
        True when ``path`` was written; False when ``overwrite`` is false and ``path`` exists (nothing
        was changed).

    Raises:
        Whatever ``write`` raises, and the :class:`OSError` of a failed file operation.
    """
    folder = path.parent
    tmp: str | None = None
    try:
        if parents:
            folder.mkdir(parents=True, exist_ok=True)
        mode = _new_file_mode(path)
        # The name is set before the file is created, so that a signal arriving just after the
        # creation (SIGTERM, Ctrl+C) finds it to remove. Within the usual 255-byte limit of a name.
        tmp = os.path.join(folder, f".{path.name[:120]}.pclup-{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        except FileExistsError:
            tmp = None  # not ours (a 48-bit random name taken: practically never)
            raise
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fp.fileno(), mode)
            os.fsync(fp.fileno())
        published = _publish(tmp, path, overwrite)
        tmp = None
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    if published:
        _fsync_folder(folder)
    return published


def _publish(tmp: str, path: Path, overwrite: bool) -> bool:
    """Give the finished temporary file its name; it is gone afterwards. False: ``path`` exists (kept).

    Without ``overwrite`` the file is hard-linked to ``path``, which fails if anything has that name
    by then (no check-then-rename race); rename is the fallback where hard links are not supported.
    """
    if not overwrite:
        try:
            os.link(tmp, path)
        except FileExistsError:
            os.unlink(tmp)
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(path):
                os.unlink(tmp)
                return False
        else:
            os.unlink(tmp)
            return True
    os.replace(tmp, path)
    return True


def _new_file_mode(path: Path) -> int | None:
    """The mode of the file ``path`` replaces, or the one a new file gets; None when unknown."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        pass
    except OSError:
        return None
    mask = umask()
    return None if mask is None else 0o666 & ~mask


def umask() -> int | None:
    """The process's umask, read without changing it where the system allows; None where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    if os.name != "posix":
        return None
    current = os.umask(0o022)  # the only portable way to read it
    os.umask(current)
    return current


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def libc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` (hand the heap's free memory back to the system), or None elsewhere (musl,
    macOS, Windows). Without it a process that freed large buffers keeps them, and the next ones come on
    top."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)
