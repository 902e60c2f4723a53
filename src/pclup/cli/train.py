"""``pclup train`` and ``pclup finetune``: the PCL trainer behind flags or a TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._errors import handle_errors

# Fine-tuning recipe of the paper's released scripts (PCL-METHOD.md §4.2): a small, constant-ish rate from
# pretrained weights. Their 600k iterations are scaled down to what a user's own folder of images wants.
FINETUNE_DEFAULTS: dict[str, Any] = {"lr": 5e-5, "steps": 20_000, "warmup_steps": 500, "schedule": "cosine", "min_lr": 1e-7}

Data = Annotated[list[Path] | None, typer.Option("--data", help="Folder(s) of HR training images (recursive); repeatable.")]
Scale = Annotated[int | None, typer.Option("--scale", "-s", min=1, help="Scale (default 4).")]
Loss = Annotated[str | None, typer.Option("--loss", help="l1 or pcl (default pcl).")]
PclWeight = Annotated[float | None, typer.Option("--pcl-weight", help="lambda in L1 + lambda * L_CL (default 0.01).")]
PclNoGrad = Annotated[bool | None, typer.Option("--pcl-no-grad/--pcl-grad", help="Released-code behaviour: L_CL without gradient.", show_default=False)]
Steps = Annotated[int | None, typer.Option("--steps", min=1, help="Training steps.")]
Batch = Annotated[int | None, typer.Option("--batch-size", min=1, help="Batch size (default 16).")]
Patch = Annotated[int | None, typer.Option("--patch-size", min=4, help="LR patch side (default 48).")]
Lr = Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")]
ValSet = Annotated[str | None, typer.Option("--val-set", help="Validation set name or folder ('none' to skip; default Set5).")]
DataDir = Annotated[str | None, typer.Option("--data-dir", help="Where named validation sets are found.")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/train or runs/finetune).")]
Resume = Annotated[Path | None, typer.Option("--resume", help="Continue a run from its folder or checkpoint.")]
Seed = Annotated[int | None, typer.Option("--seed", help="Seed (default 0).")]
Device = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.")]
Precision = Annotated[str | None, typer.Option(
    "--precision", help="auto (bf16 where the device computes it natively, else fp32), fp32 or bf16.")]
Config = Annotated[Path | None, typer.Option("--config", help="TOML file of settings; flags override it.")]
Workers = Annotated[int | None, typer.Option("--workers", min=0, help="Data-loader processes.")]
Ema = Annotated[float | None, typer.Option("--ema", help="EMA decay of the saved weights (0: off; default 0.999).")]
GradClip = Annotated[float | None, typer.Option("--grad-clip", help="Max gradient norm (0: off).")]
Warmup = Annotated[int | None, typer.Option("--warmup-steps", min=0, help="Linear warm-up steps.")]


def _overrides(**flags: Any) -> dict[str, Any]:
    out = {k: v for k, v in flags.items() if v is not None}
    if "data" in out:
        out["data"] = tuple(str(p) for p in out["data"])
    if "out" in out:
        out["out"] = str(out["out"])
    if "val_set" in out and out["val_set"].lower() in ("none", "off", ""):
        out["val_set"] = None  # (the config reads "none" as None as well)
    return out


def _run(overrides: dict[str, Any], config: Path | None, resume: Path | None, base: dict[str, Any] | None = None) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pclup.config import resolve_config
    from pclup.training.loop import StepInfo, train

    if resume is not None and config is None and (resume / "config.toml").is_file():
        config = resume / "config.toml"  # resuming a run folder: its own settings, flags on top
    cfg = resolve_config(config, overrides, base)
    if not cfg.data:
        from pclup.errors import UsageError

        raise UsageError("no training data: pass --data FOLDER (or set data in --config)")
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{cfg.loss} {cfg.arch if not cfg.init else cfg.init} x{cfg.scale}", total=cfg.steps, info="")

        def on_step(info: StepInfo) -> None:
            losses = " ".join(f"{k} {v:.4f}" for k, v in info.losses.items())
            rate = f"{1 / info.seconds:.2f} it/s" if info.seconds > 0 else ""
            progress.update(task, completed=info.step, info=f"{losses} lr {info.lr:.2e} {rate}")
            if info.validation:
                progress.console.print(
                    f"step {info.step}: {cfg.val_set} PSNR {info.validation['psnr']:.2f} dB, SSIM {info.validation['ssim']:.4f}"
                )

        try:
            final = train(cfg, resume=resume, on_step=on_step)
        except KeyboardInterrupt:
            console.print(f"interrupted; checkpoint written: continue with --resume {cfg.out}")
            raise typer.Exit(130) from None
    console.print(f"model written to {final} (use it with -m {final})")


@handle_errors
def train_command(
    data: Data = None, arch: Annotated[str | None, typer.Option("--arch", help="Architecture variant (see 'pclup models').")] = None,
    scale: Scale = None, loss: Loss = None, pcl_weight: PclWeight = None, pcl_no_grad: PclNoGrad = None, steps: Steps = None,
    batch_size: Batch = None, patch_size: Patch = None, lr: Lr = None, val_set: ValSet = None, data_dir: DataDir = None,
    out: Out = None, resume: Resume = None, seed: Seed = None, device: Device = None, precision: Precision = None,
    config: Config = None, workers: Workers = None, ema: Ema = None, grad_clip: GradClip = None, warmup_steps: Warmup = None,
) -> None:
    """Train an SR network from scratch with L1 or L1 + PCL."""
    overrides = _overrides(
        data=data, arch=arch, scale=scale, loss=loss, pcl_weight=pcl_weight, pcl_no_grad=pcl_no_grad, steps=steps,
        batch_size=batch_size, patch_size=patch_size, lr=lr, val_set=val_set, data_dir=data_dir, out=out, seed=seed,
        device=device, precision=precision, workers=workers, ema=ema, grad_clip=grad_clip, warmup_steps=warmup_steps,
    )
    _run(overrides, config, resume)


@handle_errors
def finetune_command(
    data: Data = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec to start from (built-in, folder, file, Hub).")] = None,
    scale: Scale = None, loss: Loss = None, pcl_weight: PclWeight = None, pcl_no_grad: PclNoGrad = None, steps: Steps = None,
    batch_size: Batch = None, patch_size: Patch = None, lr: Lr = None, val_set: ValSet = None, data_dir: DataDir = None,
    out: Out = None, resume: Resume = None, seed: Seed = None, device: Device = None, precision: Precision = None,
    config: Config = None, workers: Workers = None, ema: Ema = None, grad_clip: GradClip = None, warmup_steps: Warmup = None,
) -> None:
    """Fine-tune a model on your own images with PCL (small learning rate, a new model folder as output)."""
    from pclup.errors import UsageError

    if model is None and not (config or resume):
        raise UsageError("no model to start from: name one with -m/--model (pclup has no default model yet)")
    overrides = _overrides(
        data=data, init=model, scale=scale, loss=loss, pcl_weight=pcl_weight, pcl_no_grad=pcl_no_grad, steps=steps,
        batch_size=batch_size, patch_size=patch_size, lr=lr, val_set=val_set, data_dir=data_dir, out=out, seed=seed,
        device=device, precision=precision, workers=workers, ema=ema, grad_clip=grad_clip, warmup_steps=warmup_steps,
    )
    _run(overrides, config, resume, base={**FINETUNE_DEFAULTS, "out": "runs/finetune"})
