"""Build a Hugging Face Hub cache by hand, laid out exactly as huggingface_hub lays out its own.

``models--{owner}--{name}/blobs/<hash>``, ``snapshots/<commit>/<file>`` symlinked to the blob, and
``refs/<branch or tag>`` holding the commit hash. huggingface_hub then serves these files offline.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def add_repo_files(
    cache: Path, repo_id: str, files: dict[str, bytes], commit: str, refs: tuple[str, ...] = ("main",), repo_type: str = "model"
) -> Path:
    assert len(commit) == 40
    repo = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        blob = repo / "blobs" / digest
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(os.path.relpath(blob, link.parent), link)
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def commit_hash(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()
