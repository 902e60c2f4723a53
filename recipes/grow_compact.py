"""Grow a built-in compact model deeper with identity layers (the same function), as the start of a deeper
fine-tune that still blends with the original (``upscale --denoise`` deepens the shallower one the same way).

    python recipes/grow_compact.py default-x4 8 ../runs/photo/default-x4-deep8

Writes a pclup model folder (config.json + model.safetensors) whose network computes exactly what the
input model computes, with ``N`` trunk convolutions instead of its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pclup.models.compact import Compact, deepen
from pclup.weights import load_model, save_pretrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a compact model spec, e.g. default-x4")
    parser.add_argument("n_convs", type=int, help="trunk convolutions of the grown network")
    parser.add_argument("out", type=Path, help="the model folder to write")
    args = parser.parse_args()
    loaded = load_model(args.model)
    if not isinstance(loaded.model, Compact):
        raise SystemExit(f"{args.model} is not a compact network")
    grown = deepen(loaded.model.eval(), args.n_convs).eval()
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(grown(x), loaded.model(x)), "the grown network must compute the same function"
    save_pretrained(grown, args.out, metadata={"grown_from": args.model, "n_convs": str(args.n_convs)})
    print(f"wrote {args.out}: {args.model} with {args.n_convs} trunk convolutions")  # noqa: T201


if __name__ == "__main__":
    main()
