"""``pclup train`` and ``pclup finetune``: the PCL trainer behind flags or a TOML file."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from pclup.config import AUTO_GRAD_RATIO
from pclup.errors import UsageError
from pclup.training.finetune import FINETUNE_DEFAULTS, FINETUNE_WARMUP

from ._errors import Terminated, fail, handle_errors


def _d(name: str) -> str:
    """A training setting's default as help shows it (by its flag name, e.g. ``steps``)."""
    from pclup.config import default

    return str(default(name))


def _ft(name: str) -> str:
    """A fine-tuning setting's default as help shows it."""
    return str(FINETUNE_DEFAULTS.get(name, _d(name)))


Data = Annotated[list[Path] | None, typer.Option(
    "--data", help="Folder(s) of HR training images (recursive); repeatable.",
    show_default="the recipe's data")]
DataLr = Annotated[list[Path] | None, typer.Option(
    "--data-lr", help="Paired data: folder(s) of LR images matched to --data's by name (one per --data; "
    "'0001x4.png' pairs with '0001.png').", show_default="none: LR made from HR")]
Degradation = Annotated[str | None, typer.Option(
    "--degradation", help="How LR is made from HR: bicubic (clean), realistic (blur, resize, noise and "
    "JPEG, twice, in Real-ESRGAN's ranges) or a .toml file of ranges.", show_default=_d("degradation"))]
PclNegativesFrom = Annotated[str | None, typer.Option(
    "--pcl-negatives-from", help="The generated negatives: blur (blurred HR), degraded (blurred, noisy "
    "and JPEG-compressed HR) or auto (degraded when the LR is degraded or paired).",
    show_default=_d("pcl_negatives_from"))]
Scale = Annotated[int | None, typer.Option("--scale", "-s", min=1, help="Scale.", show_default=_d("scale"))]
Loss = Annotated[str | None, typer.Option("--loss", help="l1, l2 (mean squared error) or pcl (L1 + lambda "
                                          "* L_CL).", show_default=_d("loss"))]
FtLoss = Annotated[str | None, typer.Option("--loss", help="l1, l2 (mean squared error) or pcl (L1 + lambda "
                                            "* L_CL).", show_default=_ft("loss"))]
PclWeight = Annotated[str | None, typer.Option(
    "--pcl-lambda", "--pcl-weight", help="lambda in L1 + lambda * L_CL: a number, or 'auto' (set each step "
    "so that the contrastive gradient is --pcl-grad-ratio times L1's).", show_default=_d("pcl_weight"))]
FtPclWeight = Annotated[str | None, typer.Option(
    "--pcl-lambda", "--pcl-weight", help="lambda in L1 + lambda * L_CL: a number, or 'auto' (set each step "
    "so that the contrastive gradient is --pcl-grad-ratio times L1's).", show_default="auto")]
PclGradRatio = Annotated[float | None, typer.Option(
    "--pcl-grad-ratio", min=0.0, help="The automatic lambda's target: |grad L_CL| / |grad L1| on the SR "
    "output (implies --pcl-lambda auto).", show_default=f"{AUTO_GRAD_RATIO:g} with --pcl-lambda auto")]
PclDBatchnorm = Annotated[str | None, typer.Option(
    "--pcl-d-batchnorm", help="The discriminator step's BatchNorm batches: joint (real and fake together) or "
    "separate (the released code's; its loss stays at chance).", show_default=_d("pcl_d_batchnorm"))]
PclDEvery = Annotated[int | None, typer.Option(
    "--pcl-d-every", min=1, help="Step the discriminator on every K-th training step only (cheaper; a change "
    "to the method, see the docs' cost table).", show_default=_d("pcl_d_every"))]
PclClBatchnorm = Annotated[str | None, typer.Option(
    "--pcl-cl-batchnorm", help="BatchNorm when embedding for the contrastive term: running (statistics) or "
    "grouped (the released code's: batch statistics per group of images).",
    show_default=_d("pcl_cl_batchnorm"))]
DiscWidth = Annotated[int | None, typer.Option(
    "--disc-width", min=1, help="Width of the embedding network (the discriminator); cost grows as its "
    "square.",
    show_default=_d("disc_width"))]
PclWarmupSteps = Annotated[int | None, typer.Option(
    "--pcl-warmup-steps", min=0, help="Steps that train the embedding network alone (SR frozen) before "
    "the contrastive term reaches the SR network.", show_default=_d("pcl_warmup_steps"))]
FtPclWarmupSteps = Annotated[int | None, typer.Option(
    "--pcl-warmup-steps", min=0, help="Steps that train the embedding network alone (SR frozen) before "
    "the contrastive term reaches the SR network.", show_default=_ft("pcl_warmup_steps"))]
FtPclGradRatio = Annotated[float | None, typer.Option(
    "--pcl-grad-ratio", min=0.0, help="The automatic lambda's target: |grad L_CL| / |grad L1| on the SR "
    "output (0 with a number for --pcl-lambda).", show_default=_ft("pcl_grad_ratio"))]
PclNoGrad = Annotated[bool | None, typer.Option(
    "--pcl-no-grad/--pcl-grad", help="Released-code behaviour: L_CL without gradient.",
    show_default="--pcl-grad")]
PclPositives = Annotated[int | None, typer.Option(
    "--pcl-positives", min=0, help="Sharpened copies of HR among the positives (0: HR only).",
    show_default=_d("pcl_positives"))]
PclNegatives = Annotated[int | None, typer.Option(
    "--pcl-negatives", min=0, help="Blurred copies of HR among the negatives, besides the bicubic LR.",
    show_default=_d("pcl_negatives"))]
Steps = Annotated[int | None, typer.Option(
    "--steps", min=1, help="Training steps.", show_default=_d("steps"))]
FtSteps = Annotated[int | None, typer.Option(
    "--steps", min=1, help="Training steps.", show_default=_ft("steps"))]
Batch = Annotated[int | None, typer.Option(
    "--batch-size", min=1, help="Batch size.", show_default=_d("batch_size"))]
Patch = Annotated[int | None, typer.Option(
    "--patch-size", min=4, help="LR patch side in pixels.", show_default=_d("patch_size"))]
LR_HELP = "Peak learning rate (cosine schedule down to 1e-7)."
Lr = Annotated[float | None, typer.Option("--lr", help=LR_HELP, show_default=_d("lr"))]
FtLr = Annotated[float | None, typer.Option("--lr", help=LR_HELP, show_default=_ft("lr"))]
ValSet = Annotated[str | None, typer.Option(
    "--val-set", help="Validation set name or folder ('none' to skip).", show_default=_d("val_set"))]
ValEvery = Annotated[int | None, typer.Option(
    "--val-every", min=1, help="Validate every this many steps (and at the end).",
    show_default=_d("val_every"))]
ValDegrade = Annotated[str | None, typer.Option(
    "--val-degrade", help="Validate on a degraded variant of the set: realistic (seed 0), jpegQ or a .toml "
    "file, as 'pclup bench --degrade' makes it.", show_default="clean bicubic LR")]
DataDir = Annotated[str | None, typer.Option(
    "--data-dir", help="Where named validation sets are found.", show_default="$PCLUP_DATA, else the Hub")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder.", show_default=_d("out"))]
FtOut = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder.", show_default=_ft("out"))]
Resume = Annotated[Path | None, typer.Option(
    "--resume", help="Continue a run from its folder or checkpoint.", show_default="a new run")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace the run already in --out (its config, log, checkpoint and model only).")]
Seed = Annotated[int | None, typer.Option(
    "--seed", help="Seed of the batches and the initial weights.", show_default=_d("seed"))]
Device = Annotated[str | None, typer.Option(
    "--device", help="auto, cpu, cuda, cuda:N, mps.", show_default=_d("device"))]
Precision = Annotated[str | None, typer.Option(
    "--precision", help="auto (bf16 where the device computes it natively, else fp32), fp32 or bf16.",
    show_default=_d("precision"))]
Config = Annotated[Path | None, typer.Option(
    "--config", help="TOML file of settings (a recipe); flags override it.", show_default="none")]
Workers = Annotated[int | None, typer.Option(
    "--workers", min=0, help="Data-loader processes (0: in the training process).",
    show_default=_d("workers"))]
Ema = Annotated[float | None, typer.Option(
    "--ema", help="EMA decay of the saved weights (0: off).", show_default=_d("ema"))]
GradClip = Annotated[float | None, typer.Option(
    "--grad-clip", help="Max gradient norm (0: off).", show_default=_d("grad_clip"))]
Warmup = Annotated[int | None, typer.Option(
    "--warmup-steps", min=0,
    help="Linear warm-up steps, fewer than --steps.", show_default=_d("warmup_steps"))]
FtWarmup = Annotated[int | None, typer.Option(
    "--warmup-steps", min=0, help="Linear warm-up steps, fewer than --steps.",
    show_default=f"a tenth of the steps, at most {FINETUNE_WARMUP}")]


def _settings(flags: dict[str, Any]) -> dict[str, Any]:
    """A command's parameters (its ``locals()``) as training settings, by their flat names (``-m`` sets
    ``init``); the ones that say how to run (config, resume, overwrite) are left out."""
    for key in ("config", "resume", "overwrite"):
        flags.pop(key)
    if "model" in flags:
        flags["init"] = flags.pop("model")
    return _overrides(**flags)


def _overrides(**flags: Any) -> dict[str, Any]:
    out = {k: v for k, v in flags.items() if v is not None}
    weight = out.pop("pcl_weight", None)
    if weight is not None and weight.strip().lower() == "auto":
        out.setdefault("pcl_grad_ratio", AUTO_GRAD_RATIO)
    elif weight is not None:
        try:
            out["pcl_weight"] = float(weight)
        except ValueError:
            raise UsageError(f"--pcl-lambda must be a number or 'auto', not {weight!r}") from None
        if "pcl_grad_ratio" in out:
            raise UsageError("--pcl-grad-ratio sets lambda automatically: give it or a number for "
                             "--pcl-lambda, not both")
        out["pcl_grad_ratio"] = 0.0  # a fixed lambda, also over a recipe's automatic one
    for key in ("data", "data_lr"):
        if key in out:
            out[key] = tuple(str(p) for p in out[key])
    if "out" in out:
        out["out"] = str(out["out"])
    if "val_set" in out and out["val_set"].lower() in ("none", "off", ""):
        out["val_set"] = None  # (the config reads "none" as None as well)
    return out


def _precheck(cfg: Any) -> None:
    """What a run needs that can be checked without torch: its folders exist, its starting model and its
    degradation file name something. (The run checks them again, with everything else.)"""
    from pclup.errors import UsageError
    from pclup.weights import check_model_spec

    for folder in (*cfg.data.folders, *cfg.data.lr_folders):
        path = Path(folder).expanduser()
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            raise UsageError(f"training folder {path} {what}")
    for spec in (cfg.data.degradation, cfg.data.val_degrade):
        if spec and str(spec).lower().endswith(".toml") and not Path(spec).is_file():
            raise UsageError(f"degradation file {spec}: no such file")
    if cfg.model.init:
        check_model_spec(cfg.model.init, cfg.data.scale)


def _run(
    command: str, overrides: dict[str, Any], config: Path | None, resume: Path | None, overwrite: bool
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from pclup.config import resolve_config
    from pclup.errors import UsageError
    from pclup.training.finetune import finetune_config

    if resume is not None and config is None:  # resuming: the run's own settings, flags on top
        for folder in (resume, resume.parent):  # a run folder, or its checkpoint folder
            if (folder / "config.toml").is_file():
                config = folder / "config.toml"
                overrides = {"out": str(folder), **overrides}  # the run goes on where it is, wherever that is
                break
    cfg = finetune_config(config, overrides) if command == "finetune" else resolve_config(config, overrides)
    data, model, optim, out, what = cfg.data, cfg.model, cfg.optim, cfg.run.out, cfg.loss.kind
    if not data.folders:
        raise UsageError("no training data: pass --data FOLDER (or set data in --config)")
    _precheck(cfg)

    from pclup.training.checkpoint import checkpoint_step
    from pclup.training.loop import RunStart, StepInfo, WarmupInfo, train
    console = Console(stderr=True)

    def say(line: str) -> None:  # one line as written: no wrapping, no markup (paths may hold brackets)
        console.print(line, soft_wrap=True, markup=False, highlight=False)

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=console) as progress:
        description = f"{what} {model.init or model.arch} x{data.scale}"
        tasks: list[TaskID] = []  # made once the run has started: a refusal before that is one line alone

        def on_start(start: RunStart) -> None:
            say(
                f"{command}: {what} from {model.init or 'a new ' + model.arch} x{data.scale}, {optim.steps} "
                f"steps (warm-up {optim.warmup_steps}), lr {optim.lr:g}, into {out}"
            )
            tasks.append(progress.add_task(description, total=optim.steps, completed=start.step, info=""))
            if start.resumed_from is not None:
                say(f"resuming {out} from step {start.step} ({start.resumed_from})")
            if start.skipped:
                say(f"warning: {start.skipped}")

        warmup: list[TaskID] = []

        def on_warmup(info: WarmupInfo) -> None:
            if not warmup:
                warmup.append(progress.add_task("embedding warm-up", total=info.steps, info=""))
            progress.update(warmup[0], completed=info.step, info=f"d {info.d:.4f} (chance {info.chance:.4f})")
            if info.step == info.steps:
                progress.remove_task(warmup[0])
                say(f"embedding warm-up: {info.steps} steps, discriminator loss {info.d:.4f} "
                    f"(chance {info.chance:.4f})")

        def on_step(info: StepInfo) -> None:
            losses = " ".join(f"{k} {v:.4f}" for k, v in info.losses.items())
            rate = f"{1 / info.seconds:.2f} it/s" if info.seconds > 0 else ""
            if tasks:  # none on the processes that do not report (several-process runs)
                progress.update(tasks[0], completed=info.step, info=f"{losses} lr {info.lr:.2e} {rate}")
            if info.validation:
                say(f"step {info.step}: {data.val_set} PSNR {info.validation['psnr']:.2f} dB, "
                    f"SSIM {info.validation['ssim']:.4f}")

        try:
            final = train(cfg, resume=resume, overwrite=overwrite, on_step=on_step, on_start=on_start,
                          on_warmup=on_warmup)
        except KeyboardInterrupt as e:  # Ctrl+C, or SIGTERM (Terminated): the trainer wrote a checkpoint
            step = checkpoint_step(out)
            if step is None:
                raise
            if isinstance(e, Terminated):
                what, code = "terminated", 128 + signal.SIGTERM
            else:
                what, code = "interrupted", 130
            where = f"the checkpoint (step {step}) is in {out}: continue with --resume {out}"
            raise fail(f"{what}; {where}", code) from None
    say(f"model written to {final} (use it with -m {final})")


@handle_errors
def train_command(
    data: Data = None,
    arch: Annotated[str | None, typer.Option(
        "--arch", help="Architecture variant (see 'pclup models').", show_default=_d("arch"))] = None,
    scale: Scale = None, loss: Loss = None, pcl_weight: PclWeight = None, pcl_no_grad: PclNoGrad = None,
    pcl_positives: PclPositives = None, pcl_negatives: PclNegatives = None,
    pcl_grad_ratio: PclGradRatio = None, pcl_warmup_steps: PclWarmupSteps = None,
    pcl_d_batchnorm: PclDBatchnorm = None, pcl_cl_batchnorm: PclClBatchnorm = None,
    pcl_d_every: PclDEvery = None,
    disc_width: DiscWidth = None, data_lr: DataLr = None, degradation: Degradation = None,
    pcl_negatives_from: PclNegativesFrom = None,
    steps: Steps = None, batch_size: Batch = None, patch_size: Patch = None, lr: Lr = None,
    val_set: ValSet = None, val_every: ValEvery = None,
    val_degrade: ValDegrade = None, data_dir: DataDir = None, out: Out = None,
    resume: Resume = None,
    seed: Seed = None, device: Device = None, precision: Precision = None, config: Config = None,
    workers: Workers = None, ema: Ema = None, grad_clip: GradClip = None, warmup_steps: Warmup = None,
    overwrite: Overwrite = False,
) -> None:
    """Train an SR network from scratch with L1 or L1 + PCL."""
    _run("train", _settings(dict(locals())), config, resume, overwrite)


@handle_errors
def finetune_command(
    data: Data = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Model spec to start from (built-in, folder, file, Hub).",
        show_default="the built-in default model of -s: default-x2, -x3, -x4")] = None,
    scale: Scale = None, loss: FtLoss = None, pcl_weight: FtPclWeight = None, pcl_no_grad: PclNoGrad = None,
    pcl_positives: PclPositives = None, pcl_negatives: PclNegatives = None,
    pcl_grad_ratio: FtPclGradRatio = None, pcl_warmup_steps: FtPclWarmupSteps = None,
    pcl_d_batchnorm: PclDBatchnorm = None, pcl_cl_batchnorm: PclClBatchnorm = None,
    pcl_d_every: PclDEvery = None,
    disc_width: DiscWidth = None, data_lr: DataLr = None, degradation: Degradation = None,
    pcl_negatives_from: PclNegativesFrom = None,
    steps: FtSteps = None, batch_size: Batch = None, patch_size: Patch = None, lr: FtLr = None,
    val_set: ValSet = None, val_every: ValEvery = None,
    val_degrade: ValDegrade = None, data_dir: DataDir = None, out: FtOut = None,
    resume: Resume = None,
    seed: Seed = None, device: Device = None, precision: Precision = None, config: Config = None,
    workers: Workers = None, ema: Ema = None, grad_clip: GradClip = None, warmup_steps: FtWarmup = None,
    overwrite: Overwrite = False,
) -> None:
    """Fine-tune a model on your own images (small learning rate, warm-up of at most a tenth of the steps, a
    new model folder as output); L1 unless --loss pcl."""
    _run("finetune", _settings(dict(locals())), config, resume, overwrite)
