"""Test-set lookup: data folders, the Hub dataset path (real huggingface_hub, offline cache), safe tarballs."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from _hub_cache import add_repo_files, commit_hash
from PIL import Image

from pclup.datasets import extract_tarball, resolve_dataset
from pclup.errors import HubError, PclupError, UsageError


def _png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _tarball(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def test_named_set_from_data_dir_and_aliases(tmp_path: Path) -> None:
    (tmp_path / "BSD100").mkdir()
    (tmp_path / "BSD100" / "a.png").write_bytes(_png_bytes(0))
    (tmp_path / "BSD100" / ".hidden.png").write_bytes(_png_bytes(1))
    ds = resolve_dataset("bsd100", tmp_path)
    assert ds.name == "B100" and [p.name for p in ds.files] == ["a.png"]
    assert resolve_dataset("B100", tmp_path).files == ds.files


def test_folder_of_images_and_bad_names(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x.jpg").write_bytes(b"whatever")
    assert resolve_dataset(str(tmp_path / "mine")).name == "mine"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        resolve_dataset(str(tmp_path / "empty"))
    with pytest.raises(UsageError) as e:
        resolve_dataset("Set6")
    assert "Set5, Set14, B100, Urban100, Manga109" in str(e.value)


def test_hub_dataset_from_a_prepopulated_cache(hub_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PCLUP_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    archive = _tarball({"Set14_HR/x/comic.png": _png_bytes(2), "Set14_HR/x/zebra.png": _png_bytes(3)})
    add_repo_files(hub_cache, "eugenesiow/Set14", {"data/Set14_HR.tar.gz": archive}, commit_hash("set14"), repo_type="dataset")
    ds = resolve_dataset("Set14", tmp_path / "nothing-here")
    assert ds.name == "Set14" and [p.name for p in ds.files] == ["comic.png", "zebra.png"]
    assert resolve_dataset("set14", tmp_path / "nothing-here").files == ds.files  # extracted once, reused


def test_offline_and_not_cached_says_where_to_put_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PCLUP_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HubError) as e:
        resolve_dataset("Manga109", tmp_path / "data")
    message = str(e.value)
    assert "\n" not in message and "Manga109" in message and "--data-dir" in message and "offline" in message


@pytest.mark.parametrize(
    "evil",
    [
        {"members": {"../escaped.png": b"x"}},
        {"members": {"ok/../../escaped.png": b"x"}},
        {"members": {"/tmp/escaped-abs.png": b"x"}},
        {"members": {"a.png": b"x"}, "links": {"link": "../../escaped-link"}},
    ],
)
def test_a_member_escaping_the_folder_is_refused(evil: dict, tmp_path: Path) -> None:
    tarball = tmp_path / "cache" / "evil.tar.gz"
    tarball.parent.mkdir()
    tarball.write_bytes(_tarball(evil["members"], evil.get("links")))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(PclupError, match="refused"):
        extract_tarball(tarball, tmp_path / "cache" / "out")
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before  # nothing written anywhere, not even a partial folder
    assert not Path("/tmp/escaped-abs.png").exists()
