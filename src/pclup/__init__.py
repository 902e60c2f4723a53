"""pclup: image upscaling and super-resolution training with practical contrastive learning (PCL-SR).

The public API is imported lazily, so ``import pclup`` (and ``pclup --help``) does not pay for torch.

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
    "list_pretrained": "pclup.models.zoo",
    "load_model": "pclup.loading",
    "LoadedModel": "pclup.loading",
    "save_pretrained": "pclup.weights",
    "load_pretrained": "pclup.weights",
    "load_checkpoint": "pclup.checkpoints",
}

if TYPE_CHECKING:
    from .checkpoints import load_checkpoint
    from .loading import LoadedModel, load_model
    from .models import count_parameters, create_model, list_archs, list_variants
    from .models.zoo import list_pretrained
    from .weights import load_pretrained, save_pretrained


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
