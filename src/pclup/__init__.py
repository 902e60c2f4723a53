"""pclup: image upscaling and super-resolution training with practical contrastive learning (PCL-SR).

Each command's work is a function here: :func:`upscale_file` and :func:`plan_upscale` (``pclup
upscale``), :func:`benchmark` (``pclup bench``), :func:`train` and :func:`finetune`, all taking any model
that :func:`load_model` reads (docs/usage.md, "Python API"). The public API is imported lazily, so
``import pclup`` (and ``pclup --help``) does not pay for torch.

>>> import pclup
>>> model = pclup.create_model("edsr-s", scale=4)   # random weights, for training
>>> loaded = pclup.load_model("edsr-s-x4")          # doctest: +SKIP  (weights from the Hub)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_LAZY = {
    "create_model": "pclup.models",
    "list_archs": "pclup.models",
    "list_variants": "pclup.models",
    "count_parameters": "pclup.models",
    "list_pretrained": "pclup.weights",
    "load_model": "pclup.weights",
    "LoadedModel": "pclup.weights",
    "save_pretrained": "pclup.weights",
    "load_pretrained": "pclup.weights",
    "load_foreign": "pclup.weights",
    "Upscaler": "pclup.inference.upscale",
    "upscale_file": "pclup.inference.upscale",
    "plan_upscale": "pclup.inference.run",
    "train": "pclup.training.loop",
    "finetune": "pclup.training.finetune",
    "benchmark": "pclup.bench",
}

if TYPE_CHECKING:  # "name as name": re-exported
    from .bench import benchmark as benchmark
    from .inference.run import plan_upscale as plan_upscale
    from .inference.upscale import Upscaler as Upscaler
    from .inference.upscale import upscale_file as upscale_file
    from .models import count_parameters as count_parameters
    from .models import create_model as create_model
    from .models import list_archs as list_archs
    from .models import list_variants as list_variants
    from .training.finetune import finetune as finetune
    from .training.loop import train as train
    from .weights import LoadedModel as LoadedModel
    from .weights import list_pretrained as list_pretrained
    from .weights import load_foreign as load_foreign
    from .weights import load_model as load_model
    from .weights import load_pretrained as load_pretrained
    from .weights import save_pretrained as save_pretrained

def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pclup' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]
