"""Model weights: every way of naming a model, and pclup's model folders. The one door is :func:`load_model`.

Inside, each module does one job:

* ``catalogue``: the built-in models (names, scales, where their weights come from);
* ``hub``: files from the Hugging Face Hub (and its cache);
* ``formats``: pclup's model folder (``config.json`` + ``model.safetensors``) and safe reading of any
  weights file;
* ``foreign``: third-party layouts (the papers' own checkpoints, BasicSR, SwinIR, super-image);
* ``export``: one weights file in the layout spandrel (chaiNNer's loader) reads;
* ``spandrel_bridge``: the architectures only spandrel knows, when it is installed (imported on a miss);
* ``loader``: :func:`load_model`, which resolves a model spec through the others.

Other modules import from this package only. Naming and listing models (the catalogue, repo ids) does not
import torch; the names that need it are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .catalogue import (
    FAMILIES,
    PRECISION_FILE,
    MeasuredPrecision,
    Pretrained,
    check_model_spec,
    default_model_name,
    family_scale,
    find_pretrained,
    list_pretrained,
    measured_precision,
    read_measured_precision,
)
from .hub import cached_file, hub_file

_LAZY = {
    "LoadedModel": "loader",
    "blend_models": "loader",
    "load_model": "loader",
    "CONFIG_NAME": "formats",
    "WEIGHTS_NAME": "formats",
    "config_from_dict": "formats",
    "config_to_dict": "formats",
    "load_pretrained": "formats",
    "load_weights_strict": "formats",
    "read_state_dict": "formats",
    "save_pretrained": "formats",
    "SPANDREL_SUFFIXES": "export",
    "export_spandrel": "export",
    "spandrel_state_dict": "export",
    "canonicalize": "foreign",
    "load_foreign": "foreign",
    "model_from_state_dict": "foreign",
    "super_image_overrides": "foreign",
}

if TYPE_CHECKING:
    from .export import SPANDREL_SUFFIXES, export_spandrel, spandrel_state_dict
    from .foreign import canonicalize, load_foreign, model_from_state_dict, super_image_overrides
    from .formats import (
        CONFIG_NAME,
        WEIGHTS_NAME,
        config_from_dict,
        config_to_dict,
        load_pretrained,
        load_weights_strict,
        read_state_dict,
        save_pretrained,
    )
    from .loader import LoadedModel, blend_models, load_model


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pclup.weights' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "CONFIG_NAME",
    "FAMILIES",
    "WEIGHTS_NAME",
    "SPANDREL_SUFFIXES",
    "LoadedModel",
    "MeasuredPrecision",
    "PRECISION_FILE",
    "Pretrained",
    "blend_models",
    "cached_file",
    "canonicalize",
    "check_model_spec",
    "config_from_dict",
    "config_to_dict",
    "default_model_name",
    "export_spandrel",
    "family_scale",
    "find_pretrained",
    "hub_file",
    "list_pretrained",
    "load_foreign",
    "load_model",
    "load_pretrained",
    "load_weights_strict",
    "measured_precision",
    "model_from_state_dict",
    "read_measured_precision",
    "read_state_dict",
    "save_pretrained",
    "spandrel_state_dict",
    "super_image_overrides",
]
