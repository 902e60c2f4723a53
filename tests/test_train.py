"""The trainer: smoke runs per architecture family, pairwise-comparable runs, exact resume, failures, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pclup.config import TrainConfig, config_from_mapping
from pclup.errors import ModelFileError, UsageError
from pclup.training.checkpoint import load_checkpoint
from pclup.training.loop import TrainingDiverged, train
from pclup.weights import load_pretrained, read_state_dict

SMALL_ARCHS = {
    "edsr": {"n_resblocks": 1, "n_feats": 8},
    "rcan": {"n_resgroups": 1, "n_resblocks": 1, "n_feats": 8, "reduction": 4},
    "han": {"n_resgroups": 2, "n_resblocks": 1, "n_feats": 8, "reduction": 4},
    "nlsn": {"n_resblocks": 2, "n_feats": 8, "chunk_size": 16, "n_hashes": 1},
    "swinir": {"embed_dim": 12, "depths": (1,), "num_heads": (2,), "window_size": 4, "img_size": 16, "num_feat": 8},
    "compact": {"n_feats": 8, "n_convs": 1},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for i in range(3):
        yy, xx = np.mgrid[0:64, 0:72]
        img = np.stack([yy * 3, xx * 3, (yy + xx) * 2], -1) + rng.integers(0, 40, (64, 72, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _cfg(data: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(data=(str(data),), arch="compact", arch_args={"n_feats": 8, "n_convs": 1}, scale=2, patch_size=8,
                batch_size=2, steps=3, val_set=None, out=str(out), log_every=1, save_every=1000, disc_width=8,
                precision="fp32", lr=1e-3, ema=0.9)
    base.update(kw)
    return config_from_mapping(base)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return read_state_dict(run / "checkpoint" / "model.safetensors")  # type: ignore[return-value]


@pytest.mark.parametrize("arch", sorted(SMALL_ARCHS))
def test_three_steps_per_family_write_a_model_that_loads(arch: str, data: Path, tmp_path: Path) -> None:
    final = train(_cfg(data, tmp_path / arch, arch=arch, arch_args=SMALL_ARCHS[arch]))
    model = load_pretrained(final)
    assert model.config.scale == 2
    assert (final / "README.md").read_text().startswith(f"# {arch} x2")
    lines = [json.loads(line) for line in (tmp_path / arch / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3] and all(np.isfinite(line["l1"]) for line in lines)
    assert {"l1", "cl", "d"} <= set(lines[0])


def test_no_grad_pcl_trains_exactly_like_l1_and_pcl_does_not(data: Path, tmp_path: Path) -> None:
    runs = {}
    for name, kw in {"l1": {"loss": "l1"}, "nograd": {"loss": "pcl", "pcl_no_grad": True}, "pcl": {"loss": "pcl"}}.items():
        train(_cfg(data, tmp_path / name, steps=4, **kw))
        runs[name] = _weights(tmp_path / name)
    for key in runs["l1"]:
        assert torch.equal(runs["l1"][key], runs["nograd"][key]), key
    assert any(not torch.equal(runs["l1"][k], runs["pcl"][k]) for k in runs["l1"])


def test_resume_continues_exactly(data: Path, tmp_path: Path) -> None:
    straight: list[dict[str, float]] = []
    train(_cfg(data, tmp_path / "a", steps=6, loss="pcl"), on_step=lambda i: straight.append(i.losses))
    resumed: list[dict[str, float]] = []
    cfg = _cfg(data, tmp_path / "b", steps=6, save_every=3, loss="pcl")

    def stop_at_3(info) -> None:  # type: ignore[no-untyped-def]
        resumed.append(info.losses)
        if info.step == 3:
            raise KeyboardInterrupt  # what Ctrl+C raises: the trainer writes a checkpoint and stops

    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_step=stop_at_3)
    interrupted = load_checkpoint(tmp_path / "b").state
    assert interrupted["step"] == 3 and interrupted["elapsed"] > 0
    train(cfg, resume=tmp_path / "b", on_step=lambda i: resumed.append(i.losses))
    assert resumed == straight
    # the wall clock counts on across the interruption: the run's total time, not the last session's
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log] == [1, 2, 3, 4, 5, 6]
    assert log[3]["elapsed"] >= interrupted["elapsed"] - 0.05
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ema_follows_the_network_in_short_runs() -> None:
    from pclup.training.loop import ema_decay

    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 450) == pytest.approx(451 / 460)
    assert ema_decay(0.999, 100_000) == 0.999
    weight_of_init = 1.0
    for step in range(450):
        weight_of_init *= ema_decay(0.999, step)
    assert weight_of_init < 1e-6  # with a constant 0.999 it would be 0.64


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data: Path, tmp_path: Path) -> None:
    cfg = _cfg(data, tmp_path / "nan", steps=50, lr=1e30, schedule="constant", save_every=1, loss="l1", ema=0.0)
    with pytest.raises(TrainingDiverged) as e:
        train(cfg)
    assert "\n" not in str(e.value) and "checkpoint" in str(e.value)
    ckpt = load_checkpoint(tmp_path / "nan")
    assert all(torch.isfinite(v).all() for v in ckpt.model.values())


def test_bad_resume_and_bad_data(data: Path, tmp_path: Path) -> None:
    (tmp_path / "foreign").mkdir()
    torch.save({"step": 3}, tmp_path / "foreign" / "trainer_state.pt")
    with pytest.raises(ModelFileError, match="not a pclup training checkpoint"):
        train(_cfg(data, tmp_path / "r"), resume=tmp_path / "foreign")
    train(_cfg(data, tmp_path / "ok", steps=1))
    state = tmp_path / "ok" / "checkpoint" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="damaged"):
        train(_cfg(data, tmp_path / "r2"), resume=tmp_path / "ok")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_text("not an image")
    with pytest.raises(UsageError) as e:
        train(_cfg(tmp_path / "junk", tmp_path / "r3"))
    assert "no usable training image" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_cli_train_then_upscale(data: Path, tmp_path: Path) -> None:
    env = {**os.environ}
    run = subprocess.run(
        [sys.executable, "-m", "pclup", "train", "--data", str(data), "--arch", "compact", "-s", "2", "--steps", "2",
         "--batch-size", "2", "--patch-size", "8", "--val-set", "none", "--out", str(tmp_path / "run"), "--loss", "l1"],
        capture_output=True, text=True, env=env,
    )
    assert run.returncode == 0, run.stderr
    assert "model written to" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "pclup", "upscale", str(data / "0.png"), "-m", str(tmp_path / "run" / "model"), "-o", str(tmp_path / "up")],
        capture_output=True, text=True, env=env,
    )
    assert run.returncode == 0, run.stderr
    assert Image.open(tmp_path / "up" / "0_x2.png").size == (144, 128)


@pytest.mark.slow
def test_ddp_on_gloo_two_processes(data: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "ddp.toml"
    cfg.write_text(
        f'data = ["{data}"]\narch = "compact"\nscale = 2\npatch_size = 8\nbatch_size = 4\nsteps = 3\nval_set = ""\n'
        f'out = "{tmp_path / "run"}"\ndevice = "cpu"\nprecision = "fp32"\ndisc_width = 8\n[arch_args]\nn_feats = 8\nn_convs = 1\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561",
         "-m", "pclup", "train", "--config", str(cfg)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert load_pretrained(tmp_path / "run" / "model").config.scale == 2


_DDP_PROBE = """
import os, sys, torch
import pclup.training.loop as loop
from pclup.config import config_from_mapping, load_config
from pclup.training.pcl import PCL

seen = {}
step = PCL.discriminator_step
ema_update = loop._ema_update

def discriminator_step(self, *args, **kwargs):
    seen["disc"] = self.net
    return step(self, *args, **kwargs)

def record_ema(ema, model, decay):
    seen["ema"], seen["model"] = ema, model
    ema_update(ema, model, decay)

PCL.discriminator_step = discriminator_step
loop._ema_update = record_ema
loop.train(config_from_mapping(load_config(sys.argv[1])))
torch.save({k: v.state_dict() for k, v in seen.items()}, f"{sys.argv[2]}/rank{os.environ['RANK']}.pt")
"""


@pytest.mark.slow
def test_ddp_keeps_the_discriminator_the_same_on_every_process(data: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "ddp.toml"
    cfg.write_text(
        f'data = ["{data}"]\narch = "compact"\nscale = 2\npatch_size = 8\nbatch_size = 4\nsteps = 3\nval_set = ""\n'
        f'out = "{tmp_path / "run"}"\ndevice = "cpu"\nprecision = "fp32"\ndisc_width = 8\nloss = "pcl"\nema = 0.9\n'
        '[arch_args]\nn_feats = 8\nn_convs = 1\n'
    )
    (tmp_path / "probe.py").write_text(_DDP_PROBE)
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29562",
         str(tmp_path / "probe.py"), str(cfg), str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert set(ranks[0]) == {"disc", "model", "ema"}
    for name in ("disc", "model", "ema"):
        a, b = ranks[0][name], ranks[1][name]
        assert a.keys() == b.keys()
        for key in a:  # BatchNorm running statistics included
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs between the processes"


@pytest.mark.slow
def test_finetune_starts_from_a_model_spec_with_the_finetune_recipe(data: Path, tmp_path: Path) -> None:
    from pclup.models import create_model
    from pclup.weights import save_pretrained

    save_pretrained(create_model("compact", scale=2, n_feats=8, n_convs=1), tmp_path / "start")
    run = subprocess.run(
        [sys.executable, "-m", "pclup", "finetune", "--data", str(data), "-m", str(tmp_path / "start"), "-s", "2",
         "--steps", "2", "--batch-size", "2", "--patch-size", "8", "--val-set", "none", "--out", str(tmp_path / "ft"),
         "--pcl-positives", "0", "--pcl-negatives", "2"],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    config = (tmp_path / "ft" / "config.toml").read_text()
    assert "lr = 5e-05" in config and f'init = "{tmp_path / "start"}"' in config
    assert "positives = 0\nnegatives = 2\n" in config
    assert load_pretrained(tmp_path / "ft" / "model").config.n_feats == 8


def test_a_run_folder_of_an_earlier_version_resumes(data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pclup.cli import app

    settings = dict(data=[str(data)], arch="compact", scale=2, patch_size=8, batch_size=2, steps=4,
                    val_set="", out=str(tmp_path / "old"), log_every=1, save_every=2, disc_width=8,
                    precision="fp32", lr=1e-3, ema=0.9, arch_args={"n_feats": 8, "n_convs": 1})
    straight: list[dict[str, float]] = []
    new = config_from_mapping({**settings, "out": str(tmp_path / "new")})
    train(new, on_step=lambda i: straight.append(i.losses))

    def stop_at_2(info) -> None:  # type: ignore[no-untyped-def]
        if info.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config_from_mapping(settings), on_step=stop_at_2)
    flat = [f"{k} = {json.dumps(v)}" for k, v in settings.items() if k != "arch_args"]  # earlier versions'
    flat += ["[arch_args]", "n_feats = 8", "n_convs = 1", ""]
    (tmp_path / "old" / "config.toml").write_text("\n".join(flat))
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "old")])
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (tmp_path / "old" / "log.jsonl").read_text().splitlines()]
    keys = ("l1", "cl", "d", "lambda", "ratio")
    assert [{k: r[k] for k in keys} for r in log] == [{k: r[k] for k in keys} for r in straight]
    assert "[optim]\nsteps = 4\n" in (tmp_path / "old" / "config.toml").read_text()  # the new form
