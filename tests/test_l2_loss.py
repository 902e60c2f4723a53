"""``--loss l2``: mean squared error, what PSNR measures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import noise_images
from pclup.config import config_from_mapping
from pclup.errors import UsageError
from pclup.training.loop import StepInfo, train
from pclup.weights import read_state_dict


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return noise_images(tmp_path_factory.mktemp("train"), 48, 48)


def _train(data: Path, out: Path, loss: str) -> tuple[Path, list[StepInfo]]:
    seen: list[StepInfo] = []
    cfg = config_from_mapping(dict(data=(str(data),), arch="compact", arch_args={"n_feats": 8, "n_convs": 1},
                                   scale=2, patch_size=12, batch_size=2, steps=3, val_set=None, out=str(out),
                                   log_every=1, loss=loss, precision="fp32", lr=1e-3, ema=0.0, seed=1))
    return train(cfg, on_step=seen.append), seen


def test_l2_trains_on_the_squared_error(data: Path, tmp_path: Path) -> None:
    l2, seen = _train(data, tmp_path / "l2", "l2")
    l1, _ = _train(data, tmp_path / "l1", "l1")
    assert all(set(i.losses) == {"l2"} for i in seen)
    records = [json.loads(line) for line in (tmp_path / "l2" / "log.jsonl").read_text().splitlines()]
    assert [r["l2"] for r in records if "step" in r and "l2" in r]  # logged under its own name
    a, b = read_state_dict(l2 / "model.safetensors"), read_state_dict(l1 / "model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the same batches, another loss
    with pytest.raises(UsageError, match="not one of l1, l2, pcl"):
        config_from_mapping(dict(data=(str(data),), loss="l3"))
