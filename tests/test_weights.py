from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from conftest import TINY, tiny_model

from pclup.errors import IncompatibleCheckpointError, ModelFileError, UnsafeCheckpointError
from pclup.models import list_archs
from pclup.weights import load_pretrained, read_state_dict, save_pretrained


def _one_line(e: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("arch", [s.name for s in list_archs()])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_save_then_load_gives_identical_outputs_and_config(arch: str, scale: int, tmp_path: Path) -> None:
    if arch not in TINY:
        pytest.fail(f"no tiny config for {arch}")
    model = tiny_model(arch, scale).eval()
    folder = save_pretrained(model, tmp_path / "m", metadata={"note": "test"})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_pretrained(folder)
    assert loaded.config == model.config
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == arch and config["scale"] == scale and config["pclup_version"]
    assert config["metadata"]["note"] == "test"
    x = torch.rand(1, 3, 11, 13, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded(x).shape == (1, 3, 11 * scale, 13 * scale)


def test_half_storage_loads_close(tmp_path: Path) -> None:
    model = tiny_model("edsr", 2).eval()
    save_pretrained(model, tmp_path, half=True)
    loaded = load_pretrained(tmp_path)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert (model(x) - loaded(x)).abs().max() < 1e-2


def test_truncated_safetensors_is_a_one_line_error(tmp_path: Path) -> None:
    save_pretrained(tiny_model("edsr"), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFileError) as e:
        load_pretrained(tmp_path)
    assert "model.safetensors" in _one_line(e) and "truncated or corrupt" in str(e.value)


def test_weights_that_do_not_fit_name_the_mismatch(tmp_path: Path) -> None:
    save_pretrained(tiny_model("edsr"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["args"]["n_feats"] = 16
    config["args"]["n_resblocks"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(IncompatibleCheckpointError) as e:
        load_pretrained(tmp_path)
    message = _one_line(e)
    assert "6 missing (body.2.body.0.weight" in message
    assert "head.0.weight is (8, 3, 3, 3) in the file but (16, 3, 3, 3) in the model" in message


def test_config_with_unknown_argument_is_refused(tmp_path: Path) -> None:
    save_pretrained(tiny_model("edsr"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["args"]["n_blocks"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception) as e:
        load_pretrained(tmp_path)
    assert "n_blocks" in _one_line(e)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a pclup model folder"):
        load_pretrained(tmp_path)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty file"):
        read_state_dict(tmp_path / "empty.pt")


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_execute_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"head.0.weight": torch.zeros(1)}, "payload": _Exploit(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError) as e:
        read_state_dict(path)
    assert "evil.pth" in _one_line(e) and "refused" in str(e.value)
    assert not marker.exists()
    # a raw (non-zip) pickle as well
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Exploit(str(marker))))
    with pytest.raises((UnsafeCheckpointError, ModelFileError)):
        read_state_dict(raw)
    assert not marker.exists()


def test_truncated_pickle_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(tiny_model("edsr").state_dict(), path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ModelFileError) as e:
        read_state_dict(path)
    assert "model.pt" in _one_line(e)
