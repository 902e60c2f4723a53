"""The training loop, top to bottom: ``train(cfg)``.

One iteration (docs/method.md, "One training step"):

1. the batch for this step (a pure function of seed and step: resumed and compared runs see the same);
2. ``sr = model(lr)``; L1 against HR;
3. with PCL (:mod:`pclup.training.pcl`): positives (HR, sharpened HR) and hard negatives (bicubic LR,
   blurred HR) from the frequency sampler; the **discriminator step**: one Adam step of the embedding
   network on the dual contrastive GAN loss; the contrastive term through the embedding network, frozen
   for this step, so that its gradient reaches the SR network; lambda fixed or set from the measured
   gradient ratio;
4. **generator step** on L1 + lambda * L_CL, gradient clipping, EMA;
5. log, validate (with ``pclup bench``'s evaluator), checkpoint.

Around it: :mod:`.distributed` (several processes), :mod:`.checkpoint` (saving and resuming),
:mod:`.folder` (the run folder and its log), :mod:`.timer`, :mod:`.card` (the model card).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import DataConfig, ModelConfig, TrainConfig, to_toml
from ..data import PatchBatches, TrainImages, make_loader
from ..data.degrade import load_degradation
from ..device import pick_precision, to_channels_last
from ..errors import IncompatibleCheckpointError, PclupError, UsageError
from ..models.registry import SRModel, arch_of, colour_channels, create_model
from ..weights import save_pretrained
from .card import write_card
from .checkpoint import Checkpoints
from .checkpoint import resume as resume_checkpoint
from .distributed import Distributed
from .folder import cannot_write, check_run_folder, start_run
from .pcl import PCL
from .schedule import lr_at
from .timer import RunClock, StepTimer

#: LR pixels of real image around each patch that a degradation pipeline runs on (see PatchBatches).
DEGRADATION_MARGIN = 4

Pairs = list[tuple[np.ndarray, np.ndarray]]  # (hr, lr) validation images


class TrainingDiverged(PclupError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class RunStart:
    """What ``on_start`` receives once the run is set up, before its first step."""

    step: int  # the step the run starts from: 0, or the step of the checkpoint it resumes
    resumed_from: Path | None  # the checkpoint folder resumed
    images: int  # training images kept
    skipped: str | None  # one line naming the files skipped and why (None: none was)


@dataclass
class WarmupInfo:
    """What ``on_warmup`` receives after every step of the embedding network's warm-up."""

    step: int  # warm-up steps done
    steps: int
    d: float  # the discriminator loss of this step
    chance: float  # its value for a network that cannot tell real from fake


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


def train(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
    on_start: Callable[[RunStart], None] | None = None,
    on_warmup: Callable[[WarmupInfo], None] | None = None,
) -> Path:
    """Train (or fine-tune) an SR network; returns the folder of the final model.

    The run folder ``cfg.run.out`` receives ``config.toml`` (the resolved configuration), ``log.jsonl`` (one
    line per logged step and per validation, and one naming the training images skipped, if any),
    ``checkpoint/`` (the latest full state, see :mod:`pclup.training.checkpoint`) and ``model/``
    (config.json, model.safetensors, README.md). A folder that already holds a run is refused unless
    ``resume`` continues that run or ``overwrite`` replaces it. Ctrl+C (and SIGTERM, raised as a
    KeyboardInterrupt by the command line) writes a checkpoint before stopping; ``resume`` continues from
    one exactly. The checkpoint of the last step is written before the final model, so a failure to write
    the model loses nothing: ``resume`` then only writes the model.
    """
    dist = Distributed.start(cfg.run.device)
    if cfg.data.batch_size % dist.world:
        raise UsageError(
            f"--batch-size {cfg.data.batch_size} must be divisible by the {dist.world} processes")
    device = dist.device(cfg.run.device)
    channels_last = cfg.run.channels_last and device.type != "mps"
    out = Path(cfg.run.out)
    earlier_run = check_run_folder(out, resume, overwrite) if dist.main else []
    torch.manual_seed(cfg.run.seed)

    # --- the networks, their optimisers, and the step the run starts from --------------------------------
    model, source = build_model(cfg.model, cfg.data.scale)
    dtype = pick_precision(cfg.run.precision, device, arch_of(model), training=True)
    colours = colour_channels(model.config)
    pcl = PCL(cfg.loss, seed=cfg.run.seed, colours=colours, lr=cfg.optim.lr, device=device,
              channels_last=channels_last, degraded_negatives=degraded_negatives(cfg)) \
        if cfg.loss.kind == "pcl" else None
    ema = copy.deepcopy(model).eval().requires_grad_(False).to(device) if cfg.optim.ema > 0 else None
    model.to(device)
    if channels_last:
        to_channels_last(model)
    trained = [p for p in model.parameters() if p.requires_grad]
    g_opt = torch.optim.Adam(trained, lr=cfg.optim.lr, betas=(0.9, 0.999))
    nets: dict[str, Any] = {"model": model, "ema": ema, "g_opt": g_opt, "disc": pcl.net if pcl else None,
                            "d_opt": pcl.opt if pcl else None}
    start, before, resumed = resume_checkpoint(resume, **nets, scale=cfg.data.scale,
                                               extra=_load_pcl_state(pcl) if pcl else None)
    checkpoints = Checkpoints(out / "checkpoint", **nets, recipe=to_toml(cfg), enabled=dist.main,
                              last_good=(start, resumed) if resumed else None,
                              extra=(lambda: {"pcl": pcl.state()}) if pcl else None)

    # --- the data, the processes, the run folder --------------------------------------------------------
    data, batches = training_batches(cfg, dist)
    val_pairs = validation_pairs(cfg.data) if dist.main else []
    train_model = dist.wrap(model, device)
    if pcl is not None:
        pcl.distribute(dist, device)
    log = (start_run(out, earlier_run, to_toml(cfg), checkpoints.kept, _skipped_record(data, start))
           if dist.main else None)
    if on_start and dist.main:
        on_start(RunStart(start, resumed, len(data), data.skipped_summary()))
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype != torch.float32 else nullcontext

    # --- the loop ---------------------------------------------------------------------------------------
    step, clock = start, RunClock(before)
    try:
        if pcl is not None and start == 0 and pcl.warmup_done < cfg.loss.warmup_steps:
            _warm_up(cfg, pcl, model, data, dist, device, channels_last, autocast, log, on_warmup)
        for lr_t, hr_t in make_loader(batches, start_step=start, workers=cfg.data.workers):
            timer = StepTimer()
            lr_t, hr_t = _on_device(lr_t, hr_t, device, channels_last)
            rate = lr_at(step, cfg.optim)
            for group in g_opt.param_groups:
                group["lr"] = rate
            model.train()
            timer.lap("data")
            with autocast():
                sr = train_model(lr_t).float()
            pixel = "l2" if cfg.loss.kind == "l2" else "l1"  # pcl adds L_CL to L1, below
            loss = l1 = (F.mse_loss if pixel == "l2" else F.l1_loss)(sr, hr_t)
            losses = {pixel: l1.detach()}
            sr_grad: torch.Tensor | None = None
            if pcl is not None:  # the discriminator steps first; L_CL then sees the embedding net it made
                timer.lap("sr_forward")
                pos, neg = pcl.sample(hr_t, lr_t, step)
                timer.lap("sampler")
                if step % cfg.loss.d_every == 0:
                    losses["d"] = pcl.discriminator_step(hr_t, sr, pos, neg, autocast).detach()
                    timer.lap("disc_step")
                cl = pcl.contrastive_term(sr, pos, neg, autocast)
                timer.lap("embedding")
                losses["cl"] = cl.detach()
                if not cfg.loss.no_grad and torch.isfinite(l1) and torch.isfinite(cl):
                    sr_grad, weight, ratio = pcl.sr_gradient(sr, l1, cl)
                    losses.update({"lambda": torch.tensor(weight), "ratio": torch.tensor(ratio)})
                else:  # the released behaviour: L_CL is detached, and lambda changes nothing
                    weight = cfg.loss.weight
                loss = l1 + weight * cl.detach()
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"the loss became {loss.item()} at step {step + 1}; "
                                       f"{checkpoints.kept()} (try a lower --lr or a --grad-clip)")
            g_opt.zero_grad(set_to_none=True)
            if sr_grad is not None:
                sr.backward(sr_grad)  # = (l1 + lambda * cl).backward(), from the gradient already measured
            else:
                loss.backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            g_opt.step()
            if ema is not None:
                _ema_update(ema, model, ema_decay(cfg.optim.ema, step))
            timer.lap("sr_backward_step" if pcl else "sr_forward_backward_step")
            step += 1

            info = StepInfo(step, cfg.optim.steps, {k: float(v) for k, v in losses.items()}, rate,
                            timer.seconds, timings=timer.phases)
            last = step == cfg.optim.steps
            if val_pairs and (step % cfg.run.val_every == 0 or last):
                info.validation = validate(ema or model, val_pairs, cfg.data.scale, device, channels_last)
            if log and (step % cfg.run.log_every == 0 or info.validation or last):
                log.write({"step": step, "lr": rate, **info.losses, "seconds": round(info.seconds, 4),
                           "elapsed": round(clock.seconds(), 1),
                           **{"val_" + k: v for k, v in (info.validation or {}).items()}})
            if on_step:
                on_step(info)
            if step % cfg.run.save_every == 0 or last:
                checkpoints.save(step, clock.seconds())
    except KeyboardInterrupt:
        checkpoints.save(step, clock.seconds())
        raise
    finally:
        if log:
            log.close()

    final = out / "model"
    if dist.main:
        _save_model(final, cfg, ema or model, source, step, val_pairs, dtype, data.skipped_summary(first=5),
                    checkpoints.kept)
    dist.stop()
    return final


def _warm_up(
    cfg: TrainConfig, pcl: PCL, model: SRModel, data: TrainImages, dist: Distributed, device: torch.device,
    channels_last: bool, autocast: Callable[[], Any], log: Any,
    on_warmup: Callable[[WarmupInfo], None] | None,
) -> None:
    """Train the embedding network alone for ``cfg.loss.warmup_steps`` steps (from where an interrupted
    warm-up stopped): batches and samples of their own random streams, so the training batches and the SR
    network's initialisation are the same with or without a warm-up."""
    steps = cfg.loss.warmup_steps
    batches = PatchBatches(data, batch_size=cfg.data.batch_size, patch_size=cfg.data.patch_size,
                           scale=cfg.data.scale, seed=cfg.run.seed, steps=steps, rank=dist.rank,
                           world_size=dist.world, stream="warmup",
                           degradation=load_degradation(cfg.data.degradation), margin=DEGRADATION_MARGIN)
    chance = pcl.chance(batches.local_batch)
    for lr_t, hr_t in make_loader(batches, start_step=pcl.warmup_done, workers=cfg.data.workers):
        lr_t, hr_t = _on_device(lr_t, hr_t, device, channels_last)
        w = pcl.warmup_done
        d = float(pcl.warmup_step(model, lr_t, hr_t, w, autocast))
        if not math.isfinite(d):
            raise TrainingDiverged(f"the embedding network's loss became {d} at warm-up step {w + 1}")
        if log and (pcl.warmup_done % cfg.run.log_every == 0 or pcl.warmup_done == steps):
            log.write({"warmup_step": pcl.warmup_done, "d": d, "d_chance": round(chance, 4)})
        if on_warmup:
            on_warmup(WarmupInfo(pcl.warmup_done, steps, d, chance))


def _on_device(
    lr: torch.Tensor, hr: torch.Tensor, device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch on the training device, the network's input channels-last when the run is."""
    lr, hr = lr.to(device, non_blocking=True), hr.to(device, non_blocking=True)
    return (lr.contiguous(memory_format=torch.channels_last) if channels_last else lr), hr


def _load_pcl_state(pcl: PCL) -> Callable[[dict[str, Any]], None]:
    def load(state: dict[str, Any]) -> None:
        saved = state.get("pcl", {})
        try:
            pcl.load_state(saved if isinstance(saved, dict) else {})
        except (TypeError, ValueError):
            raise IncompatibleCheckpointError("the checkpoint's PCL state is damaged") from None
    return load


def degraded_negatives(cfg: TrainConfig) -> bool:
    """Whether PCL's blurred negatives also get noise and JPEG (``loss.negatives_from``; ``auto``: when the
    LR images are degraded, by a pipeline or given as paired data)."""
    kind = cfg.loss.negatives_from
    if kind == "auto":
        return cfg.data.degradation != "bicubic" or bool(cfg.data.lr_folders)
    return kind == "degraded"


def training_batches(cfg: TrainConfig, dist: Distributed) -> tuple[TrainImages, PatchBatches]:
    """The training images, decoded into memory, and the batches of this process, step by step."""
    d = cfg.data
    degradation = load_degradation(d.degradation)
    margin = DEGRADATION_MARGIN if degradation is not None else 0
    min_hr = (d.patch_size + 2 * margin) * d.scale
    if d.lr_folders:
        data = TrainImages.scan_pairs([Path(f) for f in d.folders], [Path(f) for f in d.lr_folders], d.scale,
                                      min_hr_size=min_hr)
    else:
        data = TrainImages.scan([Path(f) for f in d.folders], d.scale, min_hr_size=min_hr)
    batches = PatchBatches(data, batch_size=d.batch_size, patch_size=d.patch_size, scale=d.scale,
                           seed=cfg.run.seed, steps=cfg.optim.steps, rank=dist.rank, world_size=dist.world,
                           degradation=degradation, margin=margin)
    return data, batches


def _save_model(
    folder: Path, cfg: TrainConfig, model: SRModel, source: str, steps: int, val_pairs: Pairs,
    dtype: torch.dtype, skipped: str | None, kept: Callable[[], str],
) -> None:
    """The final model folder: the weights (float32, CPU), then the card with its validation figures. A
    failure says where the last checkpoint is, and that ``--resume`` writes the model from it."""
    model = model.to("cpu").float()
    try:
        metadata = {"source": source, "recipe": to_toml(cfg), "steps": str(steps)}
        save_pretrained(model, folder, metadata=metadata)
        validation = validate(model, val_pairs, cfg.data.scale, torch.device("cpu")) if val_pairs else None
        write_card(folder, cfg, model, source, steps, validation, dtype, skipped)
    except (PclupError, OSError) as e:
        message = cannot_write(folder, e) if isinstance(e, OSError) else str(e)
        hint = f"once it can be written, --resume {Path(cfg.run.out)} writes the model"
        raise PclupError(f"{message}; {kept()}: {hint}") from None


def build_model(cfg: ModelConfig, scale: int) -> tuple[SRModel, str]:
    """The SR network to train and where it comes from: the model ``cfg.init`` (any model spec) or a fresh
    ``cfg.arch``."""
    if cfg.init:
        from ..weights import load_model

        loaded = load_model(cfg.init, scale=scale)
        if not loaded.native:
            raise UsageError(
                f"-m {cfg.init}: {loaded.arch.name} is loaded through spandrel; pclup fine-tunes its own "
                "architectures only ('pclup models' lists them)"
            )
        if loaded.scale != scale:
            raise UsageError(f"--model {cfg.init} is x{loaded.scale}, but -s is {scale}")
        return loaded.model.train(), loaded.source
    try:
        model = create_model(cfg.arch, scale=scale, **cfg.arch_args)
    except (TypeError, ValueError, RuntimeError) as e:  # arguments that build no network (a width of -1)
        raise UsageError(f"arch_args {cfg.arch_args} do not build a {cfg.arch} network: {e}") from None
    return model.train(), f"new {cfg.arch}"


def ema_decay(decay: float, step: int) -> float:
    """The EMA decay at ``step`` (0-based): ``decay``, warmed up as ``(1 + step) / (10 + step)`` so that
    the average follows the network in a short run instead of staying near its random initialisation
    (0.999 ** 450 still weighs the initial weights by 0.64)."""
    return min(decay, (1 + step) / (10 + step))


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - decay)
        for buffer, b in zip(ema.buffers(), model.buffers(), strict=True):
            buffer.copy_(b)


def validation_pairs(cfg: DataConfig) -> Pairs:
    """``(hr, lr)`` of each validation image, as ``pclup bench`` makes them (none without ``val_set``);
    with ``val_degrade``, the LR of that degraded variant (seed 0), as ``pclup bench --degrade`` makes it."""
    from ..bench import degraded_lr, load_pair
    from ..datasets import resolve_dataset

    if not cfg.val_set:
        return []
    pairs = []
    for path in resolve_dataset(cfg.val_set, cfg.data_dir).files:
        hr, lr = load_pair(path, cfg.scale)
        if cfg.val_degrade:
            lr = degraded_lr(hr, lr, cfg.scale, cfg.val_degrade, 0, path.stem)
        pairs.append((hr, lr))
    return pairs


def validate(
    model: SRModel, pairs: Pairs, scale: int, device: torch.device, channels_last: bool = True
) -> dict[str, float]:
    """PSNR and SSIM (Y) of ``model`` on ``pairs`` by ``pclup bench``'s evaluator, with its defaults (fp32,
    tiles sized from free memory), on ``device``; ``model`` is left in eval mode."""
    from ..bench import score
    from ..inference.upscale import Upscaler
    from ..weights import LoadedModel

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # (the tile probe draws)
        up = Upscaler(LoadedModel(model, "validation", "training"), device=str(device), precision="fp32",
                      channels_last=channels_last)
        psnr, ssim = score(up, pairs, scale)
    return {"psnr": psnr, "ssim": ssim}


def _skipped_record(data: Any, step: int) -> dict[str, Any] | None:
    """The log record of the training images skipped (once per session, before the steps it concerns)."""
    skipped = data.skipped()
    if not skipped:
        return None
    return {"step": step, "images": len(data), "skipped": len(skipped), "unreadable": len(data.corrupt),
            "too_small": data.skipped_small, "skipped_files": [f"{p}: {r}" for p, r in skipped[:10]]}


__all__ = ["RunStart", "StepInfo", "WarmupInfo", "TrainingDiverged", "build_model", "ema_decay", "train"]
