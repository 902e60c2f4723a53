"""Count the multiply-accumulates (MACs) of a network's convolutions, per low-resolution input pixel.

Only ``nn.Conv2d``, ``nn.ConvTranspose2d`` and ``nn.Linear`` are counted, from the shapes seen in one forward
pass (forward hooks): a convolution costs ``H_out * W_out * C_out * (C_in / groups) * k_h * k_w`` MACs, a
transposed convolution ``H_in * W_in * C_in * (C_out / groups) * k_h * k_w``. Element-wise work (activations,
PixelShuffle, interpolation, additions), attention einsums and biases are not counted; for the convolutional
networks compared here they are a few per cent at most. One MAC is two FLOPs.

Usage::

    python benchmarks/flops.py                 # a table of the registered variants at x2/x3/x4
    python benchmarks/flops.py edsr-s compact  # only these

From code: ``macs_per_pixel(model)`` or ``count_macs(model, x)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor, nn


def count_macs(model: nn.Module, x: Tensor) -> int:
    """MACs of every convolution / linear layer in one forward pass of ``model`` on ``x``."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            inp = inputs[0]
            k = module.kernel_size[0] * module.kernel_size[1]
            per_in = module.out_channels // module.groups * k
            total += inp.shape[0] * inp.shape[2] * inp.shape[3] * module.in_channels * per_in
        elif isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            per_out = module.in_channels // module.groups * k
            total += output.shape[0] * output.shape[2] * output.shape[3] * module.out_channels * per_out
        elif isinstance(module, nn.Linear):
            total += output.numel() // module.out_features * module.in_features * module.out_features

    handles = [
        m.register_forward_hook(hook)  # type: ignore[arg-type]
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def macs_per_pixel(model: nn.Module, size: int = 32, channels: int = 3) -> float:
    """Convolution MACs per low-resolution input pixel (a ``1 x C x size x size`` input on the CPU).

    With 'same' padding the count is exactly proportional to the number of pixels, so any size gives the
    same answer (unless a network pads its input to a multiple of something).
    """
    was_training = model.training
    model.eval()
    try:
        x = torch.rand(1, channels, size, size)
        return count_macs(model, x) / (size * size)
    finally:
        model.train(was_training)


def _main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from pclup.models import count_parameters, create_model, list_variants

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help="variant names (default: every registered variant)")
    parser.add_argument("--scales", default="2,3,4")
    args = parser.parse_args(argv)
    names = args.variants or [v.name for v in list_variants()]
    scales = [int(s) for s in args.scales.split(",")]
    print(f"{'variant':<14}{'scale':>6}{'params':>14}{'MAC/LR px':>14}{'MAC/HR px':>12}")  # noqa: T201
    for name in names:
        for s in scales:
            model = create_model(name, scale=s)
            macs = macs_per_pixel(model)
            row = f"{name:<14}{s:>6}{count_parameters(model):>14,}{macs:>14,.0f}{macs / s**2:>12,.0f}"
            print(row)  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
