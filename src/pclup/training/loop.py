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
import shutil
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
from ..weights import CONFIG_NAME, WEIGHTS_NAME, config_from_dict, load_weights_strict, save_pretrained
from .checkpoint import STATE_NAME, TENSOR_FILES, checkpoint_folder, load_checkpoint, save_checkpoint
from .schedule import lr_at

#: What a run writes into its folder, and the files pclup puts in its two subfolders. ``--overwrite``
#: removes these and nothing else.
RUN_ENTRIES = ("config.toml", "log.jsonl", "checkpoint", "model")
_RUN_FILES = {
    "checkpoint": {CONFIG_NAME, STATE_NAME, *TENSOR_FILES.values()},
    "model": {CONFIG_NAME, WEIGHTS_NAME, "README.md"},
}


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
    try:
        model = create_model(cfg.arch, scale=cfg.scale, **cfg.arch_args)
    except (TypeError, ValueError, RuntimeError) as e:  # arguments that build no network (a width of -1)
        raise UsageError(f"arch_args {cfg.arch_args} do not build a {cfg.arch} network: {e}") from None
    return model.train(), f"new {cfg.arch}"


def _cannot_write(path: Path, e: OSError) -> str:
    return f"cannot write {path}: {e.strerror or e}"


def _check_run_folder(out: Path, resume: str | Path | None, overwrite: bool) -> list[Path]:
    """Check that the run may write into ``out``; the entries of an earlier run there to remove first.

    A folder that holds a run (any of :data:`RUN_ENTRIES`) is refused unless this run resumes that very
    run, or ``overwrite`` is given; ``overwrite`` removes only what pclup writes there, and refuses a
    ``checkpoint/`` or ``model/`` that holds other files.
    """
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                where = "it is a file" if parent == out else f"{parent} is a file"
                raise PclupError(f"cannot create run folder {out}: {where}, not a folder")
            break
    if not out.is_dir():
        return []
    found = [out / e for e in RUN_ENTRIES if (out / e).exists()]
    found += sorted(p for p in out.glob(".checkpoint.*"))  # a checkpoint save's leftovers
    if not found:
        return []
    same_run = resume is not None and out.resolve() in (Path(resume).resolve(), checkpoint_folder(resume).resolve().parent)
    if same_run and overwrite:
        raise UsageError(
            f"--overwrite would delete the checkpoint --resume {resume} continues from: pass one of them"
        )
    if same_run:
        return []
    if not overwrite:
        raise UsageError(
            f"{out} already holds a training run ({', '.join(p.name for p in found)}): continue it with "
            f"--resume {out}, replace it with --overwrite, or choose another --out"
        )
    for entry in found:
        if entry.name in _RUN_FILES:
            if not entry.is_dir():
                raise UsageError(
                    f"--overwrite: {entry} is not a folder pclup wrote: move it or choose another --out"
                )
            ours = _RUN_FILES[entry.name]
            foreign = sorted(p.name for p in entry.iterdir() if p.name not in ours and p.name[:1] != ".")
            if foreign:
                raise UsageError(
                    f"--overwrite: {entry} holds files pclup did not write ({', '.join(foreign[:3])}); "
                    "move them or choose another --out"
                )
    return found


def _remove(entries: list[Path]) -> None:
    for entry in entries:
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
        except OSError as e:
            raise PclupError(f"--overwrite: cannot remove {entry}: {e.strerror or e}") from None


def train(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
    on_start: Callable[[RunStart], None] | None = None,
) -> Path:
    """Train (or fine-tune) an SR network; returns the folder of the final model.

    The run folder ``cfg.out`` receives ``config.toml`` (the resolved configuration), ``log.jsonl`` (one
    line per logged step and per validation, and one naming the training images skipped, if any),
    ``checkpoint/`` (the latest full state, see :mod:`pclup.training.checkpoint`) and ``model/``
    (config.json, model.safetensors, README.md). A folder that already holds a run is refused unless
    ``resume`` continues that run or ``overwrite`` replaces it. Ctrl+C (and SIGTERM, raised as a
    KeyboardInterrupt by the command line) writes a checkpoint before stopping; ``resume`` continues from
    one exactly. The checkpoint of the last step is written before the final model, so a failure to write
    the model loses nothing: ``resume`` then only writes the model.
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
    earlier_run = _check_run_folder(out, resume, overwrite) if rank == 0 else []
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
    last_good: tuple[int, Path] | None = None  # (step, folder) of the newest complete checkpoint
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
        last_good = (start, checkpoint_folder(resume))
        del saved_cfg, ckpt

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

    def kept() -> str:
        if last_good is None:
            return "no checkpoint had been written yet"
        return f"the last good checkpoint (step {last_good[0]}) is at {last_good[1]}"

    log = None
    skipped = data.skipped()
    if rank == 0:
        _remove(earlier_run)
        path = out
        try:
            out.mkdir(parents=True, exist_ok=True)
            path = out / "config.toml"
            path.write_text(to_toml(cfg))
            path = out / "log.jsonl"
            log = path.open("a")
            if skipped:  # a record of its own, once per session, before the steps it concerns
                log.write(json.dumps({"step": start, "images": len(data), "skipped": len(skipped),
                                      "unreadable": len(data.corrupt), "too_small": data.skipped_small,
                                      "skipped_files": [f"{p}: {r}" for p, r in skipped[:10]]}) + "\n")
                log.flush()
        except OSError as e:
            if log is not None:
                log.close()
            raise PclupError(f"{_cannot_write(path, e)}; {kept()}") from None
    if on_start and rank == 0:
        on_start(RunStart(start, last_good[1] if last_good else None, len(data), data.skipped_summary()))
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
        nonlocal last_good
        if rank != 0 or last_good == (step, checkpoint_dir):
            return
        try:
            save_checkpoint(checkpoint_dir, model=model, ema=ema, disc=disc_module, state=state(step))
        except PclupError as e:
            raise PclupError(f"{e}; {kept()}") from None
        last_good = (step, checkpoint_dir)

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
                raise TrainingDiverged(f"the loss became {loss.item()} at step {step + 1}; {kept()} "
                                       "(try a lower --lr or a --grad-clip)")
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
                record = {"step": step, "lr": rate, **losses, "seconds": round(info.seconds, 4),
                          "elapsed": round(elapsed_before + time.perf_counter() - began, 1),
                          **({"val_" + k: v for k, v in info.validation.items()} if info.validation else {})}
                try:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                except OSError as e:
                    raise PclupError(f"{_cannot_write(out / 'log.jsonl', e)}; {kept()}") from None
            if on_step:
                on_step(info)
            if step % cfg.save_every == 0 or step == cfg.steps:
                checkpoint(step)
    except KeyboardInterrupt:
        checkpoint(step)
        raise
    finally:
        if log is not None:
            try:
                log.close()
            except OSError:
                pass  # its lines were flushed one by one; a failure to write one is reported there

    final = out / "model"
    if rank == 0:
        best = ema or model
        metadata = {"source": source, "recipe": to_toml(cfg), "steps": str(step)}
        try:
            save_pretrained(best.to("cpu").float(), final, metadata=metadata)
            _model_card(final, cfg, best, source, step, val_pairs, dtype, data.skipped_summary(first=5))
        except (PclupError, OSError) as e:
            message = _cannot_write(final, e) if isinstance(e, OSError) else str(e)
            hint = f"once it can be written, --resume {out} writes the model"
            raise PclupError(f"{message}; {kept()}: {hint}") from None
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return final


def _model_card(
    folder: Path, cfg: TrainConfig, model: nn.Module, source: str, steps: int, val_pairs: list[Any],
    dtype: torch.dtype, skipped: str | None = None,
) -> None:
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
        *([f"- {skipped}"] if skipped else []),
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
    tmp = folder / ".README.md.tmp"
    try:
        tmp.write_text("\n".join(lines))
        os.replace(tmp, folder / "README.md")
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["RUN_ENTRIES", "RunStart", "StepInfo", "TrainingDiverged", "build_model", "train"]
