"""The Hub path, through the real huggingface_hub code and a hand-built cache (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _hub_cache import add_repo_files, commit_hash
from conftest import tiny_model

from pclup.errors import HubError
from pclup.weights import load_model, save_pretrained
from pclup.weights.hub import parse_repo_id


def _pclup_repo_files(model: torch.nn.Module, tmp: Path) -> dict[str, bytes]:
    folder = save_pretrained(model, tmp)
    return {name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")}


def test_parse_repo_id() -> None:
    assert parse_repo_id("owner/name") == ("owner/name", None)
    assert parse_repo_id("owner/name@v1.0") == ("owner/name", "v1.0")
    assert parse_repo_id("hf:owner/my.model@" + "a" * 40) == ("owner/my.model", "a" * 40)
    assert parse_repo_id("edsr-s-x4") is None
    assert parse_repo_id("a/b/c") is None
    assert parse_repo_id("../x") is None


def test_loads_a_cached_repo_offline_and_honours_the_revision(hub_cache: Path, tmp_path: Path) -> None:
    old, new = tiny_model("edsr", 2).eval(), tiny_model("edsr", 2).eval()
    with torch.no_grad():
        for p in new.parameters():
            p.add_(0.01)
    old_commit, new_commit = commit_hash("old"), commit_hash("new")
    add_repo_files(hub_cache, "acme/sr-test", _pclup_repo_files(old, tmp_path / "a"), old_commit, refs=("v1",))
    add_repo_files(hub_cache, "acme/sr-test", _pclup_repo_files(new, tmp_path / "b"), new_commit, refs=("main",))
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        latest = load_model("acme/sr-test")
        assert torch.equal(latest.model(x), new(x))
        assert latest.source == "hf:acme/sr-test"
        for pin in ("v1", old_commit):
            pinned = load_model(f"acme/sr-test@{pin}")
            assert torch.equal(pinned.model(x), old(x)), pin
            assert pinned.source == f"hf:acme/sr-test@{pin}"
        assert torch.equal(load_model(f"acme/sr-test@{new_commit}").model(x), new(x))


def test_super_image_repo_and_builtin_name(hub_cache: Path) -> None:
    config = {"model_type": "EDSR", "n_resblocks": 2, "n_feats": 8, "res_scale": 1, "data_parallel": True}
    files = {"config.json": json.dumps(config).encode()}
    models = {}
    for s in (2, 3, 4):
        models[s] = tiny_model("edsr", s).eval()
        buffer = io.BytesIO()
        torch.save({f"module.{k}": v for k, v in models[s].state_dict().items()}, buffer)
        files[f"pytorch_model_{s}x.pt"] = buffer.getvalue()
    add_repo_files(hub_cache, "eugenesiow/edsr-base", files, commit_hash("edsr-base"))
    x = torch.rand(1, 3, 5, 5)
    loaded = load_model("eugenesiow/edsr-base", scale=3)
    assert loaded.scale == 3
    builtin = load_model("edsr-s-x2")  # a built-in name whose weights live in that repo
    assert builtin.scale == 2 and builtin.name == "edsr-s-x2"
    assert load_model("edsr-s", scale=4).scale == 4
    # super-image's EDSR computes on [0, 1] without mean shift: the loaded config says so
    assert builtin.model.config.mean_shift is False and builtin.model.config.rgb_range == 1.0
    reference = type(models[2])(dataclasses.replace(models[2].config, mean_shift=False, rgb_range=1.0)).eval()
    reference.load_state_dict(models[2].state_dict())
    with torch.no_grad():
        assert torch.equal(builtin.model(x), reference(x))


def test_offline_and_not_cached_names_the_repo() -> None:
    with pytest.raises(HubError) as e:
        load_model("nobody/not-cached@v2")
    message = str(e.value)
    assert "\n" not in message
    assert "nobody/not-cached@v2" in message and "offline" in message and "HF_HUB_OFFLINE" in message


@pytest.mark.slow
def test_cli_loads_from_the_cache_in_a_fresh_process(hub_cache: Path, tmp_path: Path) -> None:
    add_repo_files(hub_cache, "acme/cli-test", _pclup_repo_files(tiny_model("edsr", 3), tmp_path), commit_hash("c"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pclup", "info", "acme/cli-test", "--json"], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["scale"] == 3
    run = subprocess.run([sys.executable, "-m", "pclup", "info", "acme/missing"], capture_output=True, text=True, env=env)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "acme/missing" in run.stderr and "Traceback" not in run.stderr
