"""PCL's controls: the embedding network's warm-up, the automatic lambda, the discriminator's BatchNorm
batches, and their flags."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pclup.cli import app
from pclup.config import TrainConfig, config_from_mapping
from pclup.errors import UsageError
from pclup.training.loop import StepInfo, WarmupInfo, train
from pclup.weights import read_state_dict


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Photos-like images: smooth gradients with texture, so blurred and sharpened copies differ."""
    folder = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for i in range(4):
        yy, xx = np.mgrid[0:64, 0:64]
        img = np.stack([yy * 3, xx * 3, (yy + xx) * 2], -1) + rng.integers(0, 60, (64, 64, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _cfg(data: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(data=(str(data),), arch="compact", arch_args={"n_feats": 8, "n_convs": 1}, scale=2,
                patch_size=16, batch_size=4, steps=3, val_set=None, out=str(out), log_every=1,
                save_every=1000, disc_width=8, precision="fp32", lr=1e-3, ema=0.0, seed=1)
    base.update(kw)
    return config_from_mapping(base)


def _log(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_warm_up_brings_the_discriminator_loss_below_chance(data: Path, tmp_path: Path) -> None:
    seen: list[WarmupInfo] = []
    train(_cfg(data, tmp_path / "run", steps=1, pcl_warmup_steps=30, disc_lr=1e-3), on_warmup=seen.append)
    assert [i.step for i in seen] == list(range(1, 31))
    # chance: every logit equal; 4 images x 16 patches, (1 + 3) on each side
    chance = 2 * math.log(1 + 4 * 4 * 16)
    assert seen[0].chance == pytest.approx(chance)
    assert statistics.mean(i.d for i in seen[-5:]) < chance - 1.0
    records = [r for r in _log(tmp_path / "run") if "warmup_step" in r]
    assert [r["warmup_step"] for r in records] == list(range(1, 31))
    assert records[-1]["d_chance"] == pytest.approx(chance, abs=1e-4)


@pytest.mark.slow
def test_released_batchnorm_grouping_is_selectable(data: Path, tmp_path: Path) -> None:
    """Real and fake in separate BatchNorm batches (the released code) learns less than one joint batch."""
    final: dict[str, float] = {}
    for grouping in ("joint", "separate"):
        seen: list[WarmupInfo] = []
        train(_cfg(data, tmp_path / grouping, steps=1, pcl_warmup_steps=30, disc_lr=1e-3,
                   pcl_d_batchnorm=grouping), on_warmup=seen.append)
        final[grouping] = statistics.mean(i.d for i in seen[-5:])
    assert final["joint"] < final["separate"]
    with pytest.raises(UsageError, match="d_batchnorm"):
        _cfg(data, tmp_path / "x", pcl_d_batchnorm="both")


def test_warm_up_changes_neither_the_batches_nor_the_sr_start(data: Path, tmp_path: Path) -> None:
    """With L_CL carrying no gradient the SR network cannot see the discriminator: a warm-up drawn from its
    own random streams must then leave the SR weights bit-identical."""
    a = train(_cfg(data, tmp_path / "a", pcl_no_grad=True))
    b = train(_cfg(data, tmp_path / "b", pcl_no_grad=True, pcl_warmup_steps=4))
    wa, wb = read_state_dict(a / "model.safetensors"), read_state_dict(b / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["l1"] for r in _log(tmp_path / "a")] == [r["l1"] for r in _log(tmp_path / "b") if "l1" in r]


@pytest.mark.slow
def test_an_interrupted_warm_up_resumes_where_it_stopped(data: Path, tmp_path: Path) -> None:
    cfg = dict(steps=2, pcl_warmup_steps=6)
    straight = train(_cfg(data, tmp_path / "straight", **cfg))

    def stop(info: WarmupInfo) -> None:
        if info.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(data, tmp_path / "cut", **cfg), on_warmup=stop)
    resumed_warmup: list[int] = []
    cut = train(_cfg(data, tmp_path / "cut", **cfg), resume=tmp_path / "cut",
                on_warmup=lambda i: resumed_warmup.append(i.step))
    assert resumed_warmup == [4, 5, 6]
    ws, wc = read_state_dict(straight / "model.safetensors"), read_state_dict(cut / "model.safetensors")
    assert all(torch.equal(ws[k], wc[k]) for k in ws)


def test_auto_lambda_holds_the_gradient_ratio(data: Path, tmp_path: Path) -> None:
    infos: list[StepInfo] = []
    train(_cfg(data, tmp_path / "run", steps=30, pcl_grad_ratio=0.2, pcl_warmup_steps=10), on_step=infos.append)
    ratios = [i.losses["ratio"] for i in infos[5:]]
    assert 0.1 <= statistics.mean(ratios) <= 0.4  # within 2x of the target
    lambdas = {round(i.losses["lambda"], 9) for i in infos}
    assert len(lambdas) > 1  # set each step
    logged = _log(tmp_path / "run")
    assert all("lambda" in r and "ratio" in r for r in logged if "l1" in r)


def test_fixed_lambda_logs_its_measured_ratio(data: Path, tmp_path: Path) -> None:
    infos: list[StepInfo] = []
    train(_cfg(data, tmp_path / "run", pcl_weight=0.05), on_step=infos.append)
    assert all(i.losses["lambda"] == pytest.approx(0.05) and i.losses["ratio"] > 0 for i in infos)


def test_auto_lambda_resumes_exactly(data: Path, tmp_path: Path) -> None:
    cfg = dict(steps=5, pcl_grad_ratio=0.1, pcl_warmup_steps=2)
    straight: list[StepInfo] = []
    train(_cfg(data, tmp_path / "straight", **cfg), on_step=straight.append)

    def stop(info: StepInfo) -> None:
        if info.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(data, tmp_path / "cut", **cfg), on_step=stop)
    rest: list[StepInfo] = []
    train(_cfg(data, tmp_path / "cut", **cfg), resume=tmp_path / "cut", on_step=rest.append)
    assert [i.losses for i in rest] == [i.losses for i in straight[2:]]


def test_no_gradient_ignores_the_automatic_lambda(data: Path, tmp_path: Path) -> None:
    """--pcl-no-grad carries no contrastive gradient, so lambda (fixed or automatic) changes nothing."""
    a = train(_cfg(data, tmp_path / "a", pcl_no_grad=True, pcl_grad_ratio=0.1))
    b = train(_cfg(data, tmp_path / "b", loss="l1"))
    wa, wb = read_state_dict(a / "model.safetensors"), read_state_dict(b / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wb)
    with pytest.raises(UsageError, match="pcl_warmup_steps"):
        _cfg(data, tmp_path / "x", pcl_warmup_steps=-1)


@pytest.mark.parametrize(("flags", "expected"), [
    (["--pcl-lambda", "auto"], "grad_ratio = 0.1\n"),
    (["--pcl-lambda", "auto", "--pcl-grad-ratio", "0.3"], "grad_ratio = 0.3\n"),
    (["--pcl-grad-ratio", "0.05"], "grad_ratio = 0.05\n"),
    (["--pcl-lambda", "0.002"], "weight = 0.002\ngrad_ratio = 0.0\n"),
    (["--pcl-weight", "0.002"], "weight = 0.002\ngrad_ratio = 0.0\n"),
])
def test_lambda_flags(flags: list[str], expected: str, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--data", str(data), "--arch", "compact", "-s", "2", "--steps", "1", "--batch-size", "2",
        "--patch-size", "8", "--val-set", "none", "--out", str(out), "--disc-width", "8",
        "--pcl-warmup-steps", "1", *flags])
    assert result.exit_code == 0, result.output
    config = (out / "config.toml").read_text()
    assert expected in config and "warmup_steps = 1\n" in config
    assert "embedding warm-up: 1 steps" in result.output


@pytest.mark.parametrize(("flags", "message"), [
    (["--pcl-lambda", "lots"], "--pcl-lambda must be a number or 'auto', not 'lots'"),
    (["--pcl-lambda", "0.1", "--pcl-grad-ratio", "0.2"], "not both"),
    (["--pcl-d-batchnorm", "mixed"], "'mixed' is not one of joint, separate"),
])
def test_lambda_flag_errors_are_one_line(flags: list[str], message: str, data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "train", "--data", str(data), "--arch", "compact", "-s", "2", "--steps", "1", "--batch-size", "2",
        "--patch-size", "8", "--val-set", "none", "--out", str(tmp_path / "run"), *flags])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_grouped_batchnorm_embeds_each_group_apart_and_keeps_the_statistics() -> None:
    from pclup.contrastive import EmbeddingNet, contrastive_term

    torch.manual_seed(0)
    net = EmbeddingNet(width=4)
    net.train()
    with torch.no_grad():
        net(torch.rand(6, 3, 32, 32))  # running statistics away from 0 and 1
    before = [b.clone() for b in net.buffers()]
    sr = torch.rand(2, 3, 32, 32, requires_grad=True)
    pos, neg = torch.rand(2, 2, 3, 32, 32), torch.rand(3, 2, 3, 32, 32)
    grouped = contrastive_term(net, sr, pos, neg, layers=(2,), grouped=True)
    running = contrastive_term(net, sr, pos, neg, layers=(2,))
    assert all(torch.equal(a, b) for a, b in zip(before, net.buffers(), strict=True))
    assert net.training  # the mode is restored
    assert not torch.allclose(grouped, running)
    # the same by hand: a copy of the network in training mode, one call per group
    import copy

    from pclup.contrastive import infonce_loss

    twin = copy.deepcopy(net).train()
    by_hand = infonce_loss(twin.features(sr, (2,))[0], torch.stack([twin.features(g, (2,))[0] for g in pos]),
                           torch.stack([twin.features(g, (2,))[0] for g in neg]))
    assert torch.allclose(grouped, by_hand)
    grouped.backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all()


def test_grouped_batchnorm_flag(data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "train", "--data", str(data), "--arch", "compact", "-s", "2", "--steps", "1", "--batch-size", "2",
        "--patch-size", "8", "--val-set", "none", "--out", str(tmp_path / "run"), "--disc-width", "8",
        "--pcl-cl-batchnorm", "grouped"])
    assert result.exit_code == 0, result.output
    assert 'cl_batchnorm = "grouped"' in (tmp_path / "run" / "config.toml").read_text()
    with pytest.raises(UsageError, match="cl_batchnorm"):
        _cfg(data, tmp_path / "x", pcl_cl_batchnorm="batch")


def test_discriminator_every_k_steps(data: Path, tmp_path: Path) -> None:
    """--pcl-d-every 2: the discriminator steps (and changes) on steps 1, 3, 5 only; the contrastive term
    still reaches the SR network on every step."""
    seen: list[StepInfo] = []
    run = train(_cfg(data, tmp_path / "run", steps=5, pcl_d_every=2), on_step=seen.append)
    assert [("d" in i.losses) for i in seen] == [True, False, True, False, True]
    assert all("cl" in i.losses and "lambda" in i.losses for i in seen)
    assert [("d" in r) for r in _log(tmp_path / "run") if "step" in r] == [True, False, True, False, True]
    assert (run / "model.safetensors").is_file()
    with pytest.raises(UsageError, match="d_every"):
        _cfg(data, tmp_path / "x", pcl_d_every=0)


def test_d_every_1_is_the_default_and_2_changes_the_result(data: Path, tmp_path: Path) -> None:
    every = train(_cfg(data, tmp_path / "every"))
    same = train(_cfg(data, tmp_path / "same", pcl_d_every=1))
    every2 = train(_cfg(data, tmp_path / "every2", pcl_d_every=2))
    w1, w1b, w2 = (read_state_dict(p / "model.safetensors") for p in (every, same, every2))
    assert all(torch.equal(w1[k], w1b[k]) for k in w1)
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)
