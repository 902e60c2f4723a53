"""The model card (``README.md``) written next to a trained model."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .._fs import atomic_write
from .._version import __version__
from ..config import TrainConfig, to_toml
from ..device import precision_name
from ..models.registry import arch_of, count_parameters


def write_card(
    folder: Path, cfg: TrainConfig, model: nn.Module, source: str, steps: int,
    validation: dict[str, float] | None, dtype: torch.dtype, skipped: str | None = None,
) -> None:
    """Write ``folder/README.md``: what was trained from what, how, on what, its validation figures (by
    ``pclup bench``'s evaluator) and the recipe. Written to a temporary file and renamed into place."""
    spec, data, loss, optim = arch_of(model), cfg.data, cfg.loss, cfg.optim
    if loss.kind == "pcl" or loss.no_grad:
        weighting = f" (lambda {loss.weight}, {loss.form}{', no-grad' if loss.no_grad else ''})"
    else:
        weighting = ""
    lines = [
        f"# {spec.name} x{data.scale}, trained by pclup {__version__}",
        "",
        f"- architecture: {spec.name} ({spec.paper}), {count_parameters(model):,} parameters",
        f"- started from: {source}",
        f"- loss: {loss.kind}{weighting}",
        f"- steps: {steps}, batch {data.batch_size}, LR patch {data.patch_size}, "
        f"lr {optim.lr} ({optim.schedule})",
        f"- data: {', '.join(data.folders)}; precision {precision_name(dtype)}; seed {cfg.run.seed}",
        *([f"- {skipped}"] if skipped else []),
        "",
    ]
    if validation:
        lines += [
            "## Validation",
            "",
            "| set | scale | PSNR (Y) | SSIM (Y) |",
            "|---|---|---|---|",
            f"| {data.val_set} | x{data.scale} | {validation['psnr']:.2f} | {validation['ssim']:.4f} |",
            "",
        ]
    lines += ["## Recipe", "", "```toml", to_toml(cfg).rstrip(), "```", ""]
    text = "\n".join(lines).encode()
    atomic_write(folder / "README.md", lambda f: f.write(text))
