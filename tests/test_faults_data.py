"""Hostile test-set archives and the Hub probe behind a proxy.

Archives reach extraction through the Hub cache (``resolve_dataset`` -> ``hub_dataset`` ->
``extract_tarball``), so most tests put a crafted archive into the hand-built cache and go through
``resolve_dataset``, as ``pclup bench`` does. Only loopback sockets are opened.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from _hub_cache import add_repo_files, commit_hash
from pclup import datasets
from pclup.cli import app
from pclup.datasets import KNOWN_SETS, extract_tarball, resolve_dataset
from pclup.errors import PclupError

Entry = tuple[str, str, object]  # name, kind ("file", "dir", "sym", "hard", "chr", "fifo"), data or link


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size, data = len(payload), io.BytesIO(payload)
            else:
                info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                             "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
                info.mode = 0o777 if kind == "dir" else 0o644
                info.linkname = str(payload or "")
            tar.addfile(info, data)
    return buf.getvalue()


def _cve_2025_4517(dest: str) -> bytes:
    """The symlink chain whose expansion overflows PATH_MAX inside ``os.path.realpath`` (CVE-2025-4517).

    Sixteen single-letter links each point at a long folder name, so ``a/b/.../p`` is short but expands to
    nearly PATH_MAX; a long link below it points back up, ``escape`` points one level above the
    extraction folder, and members then overwrite ``../flag`` (through a hard link) and create ``../newfile``.
    """
    steps = "abcdefghijklmnop"
    component = "d" * ((os.pathconf("/", "PC_PATH_MAX") - len(dest) - 1) // (len(steps) + 1))
    entries: list[Entry] = []
    path = ""
    for step in steps:
        entries += [(os.path.join(path, component), "dir", None)]
        entries += [(os.path.join(path, step), "sym", component)]
        path = os.path.join(path, component)
    link = os.path.join(*steps, "l" * 254)
    entries += [
        (link, "sym", os.path.join(*[".."] * len(steps))),
        ("escape", "sym", os.path.join(link, "..")),
        ("flaglink", "hard", os.path.join("escape", "flag")),
        ("flaglink", "file", b"overwrite"),
        ("escape/newfile", "file", b"new"),
    ]
    return _tar(entries)


def _tree(root: Path) -> dict[str, str]:
    """Everything below ``root`` (links not followed): relative path -> kind and content digest."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "link -> " + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


PutSet = Callable[[str, bytes], Path]


@pytest.fixture
def hub_set(hub_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PutSet]:
    """Put an archive into the Hub cache as a named set's HR archive; the folder beside it (``data/``).

    No local copy of any set is found (no PCLUP_DATA, no ../shared/data beside the working folder).
    """
    monkeypatch.delenv("PCLUP_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    repos: list[Path] = []

    def put(name: str, archive: bytes) -> Path:
        _, repo_id, filename = KNOWN_SETS[name]
        snapshot = add_repo_files(
            hub_cache, repo_id, {filename: archive}, commit_hash(f"{tmp_path}{name}"), repo_type="dataset"
        )
        repos.append(hub_cache / f"datasets--{repo_id.replace('/', '--')}")
        return (snapshot / filename).parent

    yield put
    for repo in repos:
        shutil.rmtree(repo, ignore_errors=True)


def _extract_dest(folder: Path) -> str:
    """The temporary folder the extraction writes into: ``<folder>/.extract-XXXXXXXX``."""
    return str(folder / ".extract-xxxxxxxx")


def test_a_symlink_chain_past_path_max_writes_nothing_outside(hub_set: PutSet, tmp_path: Path) -> None:
    """CVE-2025-4517: the archive is refused at its first link; ``../flag`` is intact, no ``../newfile``."""
    folder = hub_set("Set5", b"")  # where the archive goes, whose length the chain is built for
    assert hub_set("Set5", _cve_2025_4517(_extract_dest(folder))) == folder
    (folder / "flag").write_text("original")
    before = _tree(tmp_path), _tree(folder)
    for _ in range(2):  # and a second run meets the same one-line refusal, not a traceback
        with pytest.raises(PclupError, match="refused") as e:
            resolve_dataset("Set5", tmp_path / "nowhere")
        assert "\n" not in str(e.value) and "symbolic link" in str(e.value)
        assert (_tree(tmp_path), _tree(folder)) == before
    assert (folder / "flag").read_text() == "original" and not (folder / "newfile").exists()
    assert not (folder / "Set5_HR.extracted").exists()  # no folder, so no .complete


@pytest.mark.parametrize(
    "entries",
    [
        [("a.png", "file", _png(1)), ("b.png", "sym", "a.png")],
        [("a.png", "file", _png(1)), ("b.png", "hard", "a.png")],
        [("a.png", "file", _png(1)), ("b.png", "hard", "../outside.png")],
        [("a.png", "file", _png(1)), ("dev", "chr", None)],
        [("a.png", "file", _png(1)), ("pipe", "fifo", None)],
    ],
    ids=["symlink-inside", "hardlink-inside", "hardlink-outside", "device", "fifo"],
)
def test_links_devices_and_pipes_are_refused(entries: list[Entry], tmp_path: Path) -> None:
    """A test set is image files: any link (even one pointing inside), device or pipe refuses the archive."""
    (tmp_path / "outside.png").write_bytes(b"outside")
    tarball = tmp_path / "cache" / "x.tar.gz"
    tarball.parent.mkdir()
    tarball.write_bytes(_tar(entries))
    before = _tree(tmp_path)
    with pytest.raises(PclupError, match="refused"):
        extract_tarball(tarball, tmp_path / "cache" / "out")
    assert _tree(tmp_path) == before


def _claims_a_huge_size() -> bytes:
    """A header that claims 1 TiB of data, followed by none: must be refused before anything is read."""
    info = tarfile.TarInfo("huge.png")
    info.size = 1 << 40
    return zlib.compress(info.tobuf(tarfile.PAX_FORMAT) + b"\0" * 1024, wbits=31)


@pytest.mark.parametrize(
    ("limits", "archive"),
    [
        ({}, _claims_a_huge_size()),
        ({"MAX_FILE_BYTES": 100}, _tar([("a.png", "file", b"x" * 101)])),
        ({"MAX_FILE_BYTES": 100, "MAX_TOTAL_BYTES": 250},
         _tar([(f"{i}.png", "file", b"x" * 90) for i in "abc"])),
        ({"MAX_MEMBERS": 3}, _tar([(f"{i}.png", "file", b"x") for i in range(4)])),
    ],
    ids=["claimed-1TiB", "file-too-large", "total-too-large", "too-many-members"],
)
def test_archive_size_bounds(
    limits: dict[str, int], archive: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member, the total, or the member count past the bounds of a test set refuses the archive."""
    for name, value in limits.items():
        monkeypatch.setattr(datasets, name, value)
    tarball = tmp_path / "x.tar.gz"
    tarball.write_bytes(archive)
    before = _tree(tmp_path)
    with pytest.raises(PclupError, match="refused") as e:
        extract_tarball(tarball, tmp_path / "out")
    assert "\n" not in str(e.value)
    assert _tree(tmp_path) == before


def test_a_damaged_archive_is_one_line_exit_1_and_leaves_nothing(hub_set: PutSet, tmp_path: Path) -> None:
    """One flipped byte: the gzip checksum says so, rather than a cached extraction of damaged images."""
    good = bytearray(_tar([(f"Urban100_HR/{i}.png", "file", _png(i)) for i in range(4)]))
    good[len(good) // 2] ^= 0xFF
    folder = hub_set("Urban100", bytes(good))
    before = _tree(tmp_path), _tree(folder)
    result = CliRunner().invoke(app, ["bench", "-m", "bicubic", "--set", "Urban100", "-s", "2"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("pclup: error:"), result.stderr
    assert (_tree(tmp_path), _tree(folder)) == before  # no extraction of damaged images kept for next time
    assert "damaged" in lines[0]


def test_an_unfinished_or_older_extraction_is_removed_and_redone(hub_set: PutSet, tmp_path: Path) -> None:
    """No ``.complete`` (interrupted), or one written by an older extractor that made links: extract again."""
    folder = hub_set("B100", _tar([("BSD100_HR/", "dir", None), ("BSD100_HR/a.png", "file", _png(1))]))
    target = folder / "BSD100_HR.extracted"
    (tmp_path / "outside.png").write_bytes(_png(2))
    target.mkdir()
    (target / "partial.png").write_bytes(b"half")  # interrupted: no .complete
    assert [p.name for p in resolve_dataset("B100").files] == ["a.png"]
    assert (target / ".complete").is_file()
    assert [p.name for p in resolve_dataset("B100").files] == ["a.png"]  # finished: reused
    # an extraction an older pclup finished with "ok", holding a link that leads out of the folder
    shutil.rmtree(target)
    target.mkdir()
    (target / ".complete").write_text("ok")
    (target / "leak.png").symlink_to(tmp_path / "outside.png")
    files = resolve_dataset("B100").files
    assert [p.name for p in files] == ["a.png"] and not any(p.is_symlink() for p in target.rglob("*"))
    assert (tmp_path / "outside.png").read_bytes() == _png(2)


@pytest.mark.slow
def test_bench_meets_a_hostile_archive_with_one_line_every_time(tmp_path: Path) -> None:
    """``pclup bench`` on the CVE-2025-4517 archive in its Hub cache: exit 1 with one line, twice."""
    hf_home = tmp_path / "hf"
    _, repo_id, filename = KNOWN_SETS["Set5"]
    snapshot = add_repo_files(hf_home / "hub", repo_id, {}, commit_hash("cve"), repo_type="dataset")
    folder = (snapshot / filename).parent
    archive = {filename: _cve_2025_4517(_extract_dest(folder))}
    add_repo_files(hf_home / "hub", repo_id, archive, commit_hash("cve"), repo_type="dataset")
    (folder / "flag").write_text("original")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PCLUP_DATA", "HF_HUB_CACHE")}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    before = _tree(tmp_path)
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-m", "pclup", "bench", "-m", "bicubic", "--set", "Set5", "-s", "2"],
            capture_output=True, text=True, cwd=work, env=env, timeout=120,
        )
        assert run.returncode == 1, run.stderr
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("pclup: error:") and "refused" in lines[0], run.stderr
        assert _tree(tmp_path) == before
    assert (folder / "flag").read_text() == "original"


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from pclup.weights.hub import hub_reachable

    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    real = socket.getaddrinfo

    def loopback_only(host: object, *args: object, **kwargs: object) -> object:
        if host not in ("127.0.0.1", "localhost"):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: not resolved in tests")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    hub_reachable.cache_clear()
    yield
    hub_reachable.cache_clear()


def test_the_hub_probe_goes_through_the_proxy_unless_no_proxy_covers_the_host(
    no_proxy_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from pclup.weights.hub import hub_reachable

    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")  # unresolvable: only the proxy answers
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen(4)
        proxy.settimeout(5)
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        assert hub_reachable(timeout=2)
        proxy.accept()[0].close()  # the probe connected to the proxy
        hub_reachable.cache_clear()
        monkeypatch.setenv("NO_PROXY", "localhost,.invalid")
        assert not hub_reachable(timeout=2)  # straight to hub.invalid, which does not resolve
        proxy.setblocking(False)
        with pytest.raises(BlockingIOError):
            proxy.accept()  # and the proxy was not asked
