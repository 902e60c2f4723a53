"""A run folder: one run per folder, its ``config.toml`` and its ``log.jsonl``.

What a run writes there: ``config.toml`` (the resolved configuration), ``log.jsonl`` (one JSON line per
record), ``checkpoint/`` (:mod:`pclup.training.checkpoint`) and ``model/`` (the final model and its card).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import PclupError, UsageError
from ..weights import CONFIG_NAME, WEIGHTS_NAME
from .checkpoint import STATE_NAME, TENSOR_FILES, checkpoint_folder

#: What a run writes into its folder, and the files pclup puts in its two subfolders. ``--overwrite``
#: removes these and nothing else.
RUN_ENTRIES = ("config.toml", "log.jsonl", "checkpoint", "model")
_RUN_FILES = {
    "checkpoint": {CONFIG_NAME, STATE_NAME, *TENSOR_FILES.values()},
    "model": {CONFIG_NAME, WEIGHTS_NAME, "README.md"},
}


def cannot_write(path: Path, e: OSError) -> str:
    return f"cannot write {path}: {e.strerror or e}"


def check_run_folder(out: Path, resume: str | Path | None, overwrite: bool) -> list[Path]:
    """Check that the run may write into ``out``; the entries of an earlier run there to remove first.

    A folder that holds a run (any of :data:`RUN_ENTRIES`) is refused unless this run resumes that very
    run, or ``overwrite`` is given; ``overwrite`` removes only what pclup writes there, and refuses a
    ``checkpoint/`` or ``model/`` that holds other files.
    """
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                where = "it is a file" if parent == out else f"{parent} is a file"
                raise PclupError(f"cannot create run folder {out}: {where}, not a folder")
            break
    if not out.is_dir():
        return []
    found = [out / e for e in RUN_ENTRIES if (out / e).exists()]
    found += sorted(p for p in out.glob(".checkpoint.*"))  # a checkpoint save's leftovers
    if not found:
        return []
    same_run = resume is not None and out.resolve() in (
        Path(resume).resolve(), checkpoint_folder(resume).resolve().parent
    )
    if same_run and overwrite:
        raise UsageError(
            f"--overwrite would delete the checkpoint --resume {resume} continues from: pass one of them"
        )
    if same_run:
        return []
    if not overwrite:
        raise UsageError(
            f"{out} already holds a training run ({', '.join(p.name for p in found)}): continue it with "
            f"--resume {out}, replace it with --overwrite, or choose another --out"
        )
    for entry in found:
        if entry.name in _RUN_FILES:
            if not entry.is_dir():
                raise UsageError(
                    f"--overwrite: {entry} is not a folder pclup wrote: move it or choose another --out"
                )
            ours = _RUN_FILES[entry.name]
            foreign = sorted(p.name for p in entry.iterdir() if p.name not in ours and p.name[:1] != ".")
            if foreign:
                raise UsageError(
                    f"--overwrite: {entry} holds files pclup did not write ({', '.join(foreign[:3])}); "
                    "move them or choose another --out"
                )
    return found


def _remove(entries: list[Path]) -> None:
    for entry in entries:
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
        except OSError as e:
            raise PclupError(f"--overwrite: cannot remove {entry}: {e.strerror or e}") from None


class RunLog:
    """``log.jsonl``, opened for appending: each record one JSON line, flushed at once. A failure to write
    is a one-line error that ends with ``kept()`` (where the last good checkpoint is)."""

    def __init__(self, path: Path, kept: Callable[[], str]) -> None:
        self.path, self.kept = path, kept
        self.file = path.open("a")

    def write(self, record: dict[str, Any]) -> None:
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as e:
            raise PclupError(f"{cannot_write(self.path, e)}; {self.kept()}") from None

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # its lines were flushed one by one; a failure to write one is reported there


def start_run(
    out: Path, earlier: list[Path], recipe: str, kept: Callable[[], str], record: dict[str, Any] | None = None
) -> RunLog:
    """Make the run folder ready: the earlier run's entries removed, ``config.toml`` written, the log open
    (and ``record``, if any, written to it)."""
    _remove(earlier)
    path = out
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "config.toml"
        path.write_text(recipe)
        path = out / "log.jsonl"
        log = RunLog(path, kept)
    except OSError as e:
        raise PclupError(f"{cannot_write(path, e)}; {kept()}") from None
    if record:
        try:
            log.write(record)
        except PclupError:
            log.close()
            raise
    return log
