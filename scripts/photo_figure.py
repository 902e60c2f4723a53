"""The README's before/after picture: one degraded test image, the same crop through bicubic, default-x4 and
photo-x4, with HR.

    python scripts/photo_figure.py --set Set14-real --image zebra --out docs/images/photo-x4.png

The LR is the bench's seeded degradation of that image (``pclup bench --degrade``, seed 0); the crop is the
``--crop``-pixel window (HR pixels) where default-x4 and photo-x4 differ most, unless ``--box TOP LEFT``
gives it. Columns: the degraded input (nearest-neighbour, as a viewer would enlarge it), bicubic,
default-x4, photo-x4, HR; each labelled with its PSNR on Y over the whole image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pclup import images  # noqa: E402
from pclup.bench import Comparison, _crop_score, compare_grid, degraded_lr, load_pair, super_resolve  # noqa: E402
from pclup.datasets import resolve_dataset, split_variant  # noqa: E402
from pclup.inference.upscale import Upscaler  # noqa: E402
from pclup.metrics import evaluate_pair  # noqa: E402
from pclup.weights import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="Set14-real")
    parser.add_argument("--image", required=True, help="the image's name in the set, without extension")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--box", type=int, nargs=2, metavar=("TOP", "LEFT"))
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    base, variant = split_variant(args.set)
    path = next(p for p in resolve_dataset(base, args.data_dir).files if p.stem == args.image)
    hr, lr = load_pair(path, 4)
    if variant:
        lr = degraded_lr(hr, lr, 4, variant, 0, path.stem)
    outputs = {
        "input": np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1),
        "bicubic": super_resolve(None, lr, 4),
    }
    for name in ("default-x4", "photo-x4"):
        outputs[name] = super_resolve(Upscaler(load_model(name), device="cpu", precision="fp32"), lr, 4)
    size = args.crop
    if args.box:
        top, left = args.box
    else:
        _, top, left = _crop_score(outputs["default-x4"], outputs["photo-x4"], size)
    comp = Comparison(f"{args.set}", 4, path.stem, (top, left, size, size))
    for label, img in {**outputs, "HR": hr}.items():
        comp.crops[label] = img[top : top + size, left : left + size].copy()
        if label != "HR":
            comp.psnr[label] = evaluate_pair(img, hr, 4)[0]
    grid = compare_grid([comp], zoom=args.zoom)
    images.write_image(images.Image(pixels=grid, format="PNG"), args.out)
    print(f"wrote {args.out} ({path.stem}, crop top {top} left {left}, {size} px)")  # noqa: T201


if __name__ == "__main__":
    main()
