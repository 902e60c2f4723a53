"""The training loop, top to bottom: ``train(cfg)``.

One iteration (PCL-METHOD.md §2.5):

1. the batch for this step (a pure function of seed and step: resumed and compared runs see the same);
2. ``sr = model(lr)``; L1 against HR;
3. with PCL: positives (HR, sharpened HR) and hard negatives (bicubic LR, blurred HR) from the frequency
   sampler; **discriminator step**: one Adam step of the embedding network on the dual contrastive GAN
   loss (real: HR and positives; fake: ``sr.detach()`` and blurred negatives);
4. the contrastive term through the embedding network, frozen for this step, so that its gradient
   reaches the SR network (``pcl_no_grad``: computed without gradient, the released code's behaviour);
5. **generator step** on L1 + lambda * L_CL, gradient clipping, EMA;
6. log, validate, checkpoint.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import images
from .._version import __version__
from ..config import TrainConfig, to_toml
from ..errors import IncompatibleCheckpointError, PclupError, UsageError
from ..inference.device import pick_device, pick_precision, precision_name, to_channels_last
from ..metrics import evaluate_pair
from ..models.registry import arch_of, colour_channels, count_parameters, create_model
from ..weights import config_from_dict, load_weights_strict, save_pretrained
from .checkpoint import load_checkpoint, save_checkpoint
from .schedule import lr_at


class TrainingDiverged(PclupError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class StepInfo:
    """What ``on_step`` receives after every step."""

    step: int  # steps done
    steps: int
    losses: dict[str, float]
    lr: float
    seconds: float  # wall time of this step
    validation: dict[str, float] | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase of the step


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) when not distributed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def ema_decay(decay: float, step: int) -> float:
    """The EMA decay at ``step`` (0-based): ``decay``, warmed up as ``(1 + step) / (10 + step)`` so that
    the average follows the network in a short run instead of staying near its random initialisation
    (0.999 ** 450 still weighs the initial weights by 0.64)."""
    return min(decay, (1 + step) / (10 + step))


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def _validate(model: nn.Module, pairs: list[tuple[Any, Any]], scale: int, device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    model.eval()
    psnrs, ssims = [], []
    with torch.inference_mode(), (torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()):
        for hr, lr in pairs:
            sr = model(images.to_tensor(lr).to(device)).float().clamp(0, 1)
            p, s = evaluate_pair(images.from_tensor(sr, hr.dtype), hr, scale)
            psnrs.append(p)
            ssims.append(s)
    return {"psnr": sum(psnrs) / len(psnrs), "ssim": sum(ssims) / len(ssims)}


def build_model(cfg: TrainConfig) -> tuple[nn.Module, str]:
    """The SR network to train: from ``cfg.init`` (any model spec) or a fresh ``cfg.arch``."""
    if cfg.init:
        from ..loading import load_model

        loaded = load_model(cfg.init, scale=cfg.scale)
        if loaded.scale != cfg.scale:
            raise UsageError(f"--model {cfg.init} is x{loaded.scale}, but -s is {cfg.scale}")
        return loaded.model.train(), loaded.source
    return create_model(cfg.arch, scale=cfg.scale, **cfg.arch_args).train(), f"new {cfg.arch}"


def train(cfg: TrainConfig, *, resume: str | Path | None = None, on_step: Callable[[StepInfo], None] | None = None) -> Path:
    """Train (or fine-tune) an SR network; returns the folder of the final model.

    The run folder ``cfg.out`` receives ``config.toml`` (the resolved configuration), ``log.jsonl`` (one
    line per logged step and per validation), ``checkpoint/`` (the latest full state, see
    :mod:`pclup.training.checkpoint`) and ``model/`` (config.json, model.safetensors, README.md).
    Ctrl+C writes a checkpoint before stopping; ``resume`` continues from one exactly.
    """
    from ..contrastive import EmbeddingNet, FrequencySampler, contrastive_term, dual_contrastive_d_loss
    from ..data import PatchBatches, TrainImages, make_loader, step_generator, validation_pairs
    from ..datasets import resolve_dataset

    # --- setup ------------------------------------------------------------------------------------------
    rank, world, local_rank = _distributed()
    if world > 1:
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() and cfg.device in ("auto", "cuda") else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
    if cfg.batch_size % world:
        raise UsageError(f"--batch-size {cfg.batch_size} must be divisible by the {world} processes")
    device = pick_device(f"cuda:{local_rank}" if world > 1 and torch.cuda.is_available() and cfg.device in ("auto", "cuda") else cfg.device)
    out = Path(cfg.out)
    checkpoint_dir = out / "checkpoint"
    torch.manual_seed(cfg.seed)

    model, source = build_model(cfg)
    spec = arch_of(model)
    dtype = pick_precision(cfg.precision, device, spec, training=True)
    use_pcl = cfg.loss == "pcl"
    with torch.random.fork_rng(devices=[]):  # the discriminator's init must not shift the SR run's RNG
        torch.manual_seed(cfg.seed + 1)
        disc = EmbeddingNet(width=cfg.disc_width, in_channels=3 * colour_channels(model.config)) if use_pcl else None
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema > 0 else None
    model.to(device)
    if ema is not None:
        ema.to(device)
    if disc is not None:
        disc.to(device)
        if cfg.channels_last and device.type != "mps":
            to_channels_last(disc)  # 1.2-1.4x faster discriminator passes on CPUs
    if cfg.channels_last and device.type != "mps":
        to_channels_last(model)
    g_opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.999))
    d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr or cfg.lr, betas=(0.9, 0.999)) if disc else None

    start, elapsed_before = 0, 0.0
    if resume:
        ckpt = load_checkpoint(resume)
        saved_cfg = ckpt.state.get("config_toml", "")
        config_from_dict(ckpt.model_config, str(resume))  # a foreign config fails here
        if ckpt.model_config.get("architecture") != spec.name or ckpt.model_config.get("scale") != cfg.scale:
            raise IncompatibleCheckpointError(
                f"--resume {resume}: holds {ckpt.model_config.get('architecture')} x{ckpt.model_config.get('scale')}, "
                f"this run trains {spec.name} x{cfg.scale}"
            )
        load_weights_strict(model, ckpt.model, str(resume))
        if ema is not None and ckpt.ema is not None:
            load_weights_strict(ema, ckpt.ema, str(resume))
        if disc is not None:
            if ckpt.disc is None:
                raise IncompatibleCheckpointError(f"--resume {resume}: an L1 checkpoint cannot resume a PCL run")
            disc.load_state_dict(ckpt.disc)
        try:
            g_opt.load_state_dict(ckpt.state["g_opt"])
            if d_opt is not None:
                d_opt.load_state_dict(ckpt.state["d_opt"])
        except (KeyError, ValueError) as e:
            raise IncompatibleCheckpointError(f"--resume {resume}: optimiser state does not fit this run ({e})") from None
        torch.set_rng_state(ckpt.state["torch_rng"])
        start = int(ckpt.state["step"])
        elapsed_before = float(ckpt.state.get("elapsed", 0.0))  # wall time of the run's earlier sessions
        del saved_cfg

    data = TrainImages.scan([Path(d) for d in cfg.data], cfg.scale, min_hr_size=cfg.patch_size * cfg.scale)
    batches = PatchBatches(data, batch_size=cfg.batch_size, patch_size=cfg.patch_size, scale=cfg.scale,
                           seed=cfg.seed, steps=cfg.steps, rank=rank, world_size=world)
    val_pairs = (
        validation_pairs(list(resolve_dataset(cfg.val_set, cfg.data_dir).files), cfg.scale)
        if cfg.val_set and rank == 0 else []
    )
    sampler = FrequencySampler(k=cfg.pcl_samples) if use_pcl else None
    train_model: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[local_rank] if device.type == "cuda" else None)
        if disc is not None:
            disc = DDP(disc, device_ids=[local_rank] if device.type == "cuda" else None)  # type: ignore[assignment]
    disc_module: Any = disc.module if world > 1 and disc is not None else disc

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(to_toml(cfg))
    log = (out / "log.jsonl").open("a") if rank == 0 else None
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype != torch.float32 else nullcontext

    def state(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "g_opt": g_opt.state_dict(),
            "d_opt": d_opt.state_dict() if d_opt else {},
            "torch_rng": torch.get_rng_state(),
            "config_toml": to_toml(cfg),
            "pclup_version": __version__,
            "elapsed": elapsed_before + time.perf_counter() - began,
        }

    def checkpoint(step: int) -> None:
        if rank == 0:
            save_checkpoint(checkpoint_dir, model=model, ema=ema, disc=disc_module, state=state(step))

    # --- loop -------------------------------------------------------------------------------------------
    step = start
    began = time.perf_counter()
    try:
        for lr_t, hr_t in make_loader(batches, start_step=start, workers=cfg.workers):
            t0 = time.perf_counter()
            lr_t = lr_t.to(device, non_blocking=True)
            hr_t = hr_t.to(device, non_blocking=True)
            if cfg.channels_last and device.type != "mps":
                lr_t = lr_t.contiguous(memory_format=torch.channels_last)
            rate = lr_at(step, cfg)
            for group in g_opt.param_groups:
                group["lr"] = rate
            model.train()
            timings: dict[str, float] = {}
            mark = time.perf_counter()

            def lap(name: str) -> None:
                nonlocal mark
                now = time.perf_counter()
                timings[name] = timings.get(name, 0.0) + now - mark
                mark = now

            lap("data")
            with autocast():
                sr = train_model(lr_t).float()
            l1 = F.l1_loss(sr, hr_t)
            parts: dict[str, Tensor] = {"l1": l1.detach()}
            loss = l1
            if use_pcl and sampler is not None and disc is not None and d_opt is not None:
                lap("sr_forward")
                pos, neg = sampler.sample(hr_t, lr_t.float(), step_generator(cfg.seed, step, "sampler"))
                lap("sampler")
                # discriminator step: real = HR and its sharpened copies, fake = SR and the blurred HR
                disc.train()
                with autocast():
                    real = disc_module.logits(torch.cat([hr_t, *pos[1:]]))
                    fake = disc_module.logits(torch.cat([sr.detach(), *neg[1:]]))
                d_loss = dual_contrastive_d_loss(real.float(), fake.float())
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
                lap("disc_step")
                # contrastive term through the embedding network, frozen for this step
                with autocast():
                    cl = contrastive_term(disc_module, sr, pos, neg, layers=cfg.pcl_layers, loss=cfg.pcl_form,
                                          tau=cfg.pcl_tau, no_grad=cfg.pcl_no_grad).float()
                loss = l1 + cfg.pcl_weight * cl
                lap("embedding")
                parts.update({"cl": cl.detach(), "d": d_loss.detach()})
            if not torch.isfinite(loss):
                kept = (
                    f"the last good checkpoint is kept in {checkpoint_dir}"
                    if (checkpoint_dir / "trainer_state.pt").is_file()
                    else "no checkpoint had been written yet"
                )
                raise TrainingDiverged(
                    f"the loss became {loss.item()} at step {step + 1}; {kept} (try a lower --lr or a --grad-clip)"
                )
            g_opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            g_opt.step()
            if ema is not None:
                _ema_update(ema, model, ema_decay(cfg.ema, step))
            lap("sr_backward_step" if use_pcl else "sr_forward_backward_step")
            step += 1

            losses = {k: float(v) for k, v in parts.items()}
            info = StepInfo(step, cfg.steps, losses, rate, time.perf_counter() - t0, timings=timings)
            if rank == 0 and val_pairs and (step % cfg.val_every == 0 or step == cfg.steps):
                info.validation = _validate(ema or model, val_pairs, cfg.scale, device, dtype)
            if log is not None and (step % cfg.log_every == 0 or info.validation or step == cfg.steps):
                log.write(json.dumps({"step": step, "lr": rate, **losses, "seconds": round(info.seconds, 4),
                                      "elapsed": round(elapsed_before + time.perf_counter() - began, 1),
                                      **({"val_" + k: v for k, v in info.validation.items()} if info.validation else {})}) + "\n")
                log.flush()
            if on_step:
                on_step(info)
            if step % cfg.save_every == 0 or step == cfg.steps:
                checkpoint(step)
    except KeyboardInterrupt:
        checkpoint(step)
        raise
    finally:
        if log is not None:
            log.close()

    final = out / "model"
    if rank == 0:
        best = ema or model
        metadata = {"source": source, "recipe": to_toml(cfg), "steps": str(step)}
        save_pretrained(best.to("cpu").float(), final, metadata=metadata)
        _model_card(final, cfg, best, source, step, val_pairs, dtype)
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return final


def _model_card(folder: Path, cfg: TrainConfig, model: nn.Module, source: str, steps: int, val_pairs: list[Any], dtype: torch.dtype) -> None:
    spec = arch_of(model)
    lines = [
        f"# {spec.name} x{cfg.scale}, trained by pclup {__version__}",
        "",
        f"- architecture: {spec.name} ({spec.paper}), {count_parameters(model):,} parameters",
        f"- started from: {source}",
        f"- loss: {cfg.loss}" + (f" (lambda {cfg.pcl_weight}, {cfg.pcl_form}, no-grad)" if cfg.pcl_no_grad else
                                   f" (lambda {cfg.pcl_weight}, {cfg.pcl_form})" if cfg.loss == "pcl" else ""),
        f"- steps: {steps}, batch {cfg.batch_size}, LR patch {cfg.patch_size}, lr {cfg.lr} ({cfg.schedule})",
        f"- data: {', '.join(cfg.data)}; precision {precision_name(dtype)}; seed {cfg.seed}",
        "",
    ]
    if val_pairs:
        result = _validate(model, val_pairs, cfg.scale, torch.device("cpu"), torch.float32)
        lines += [
            "## Validation",
            "",
            "| set | scale | PSNR (Y) | SSIM (Y) |",
            "|---|---|---|---|",
            f"| {cfg.val_set} | x{cfg.scale} | {result['psnr']:.2f} | {result['ssim']:.4f} |",
            "",
        ]
    lines += ["## Recipe", "", "```toml", to_toml(cfg).rstrip(), "```", ""]
    (folder / "README.md").write_text("\n".join(lines))


__all__ = ["StepInfo", "TrainingDiverged", "build_model", "train"]
