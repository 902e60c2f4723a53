"""Third-party weights files: what the papers' authors and other toolkits published.

Accepted layouts (each unwrapped by :func:`canonicalize`, then matched by key names and shapes):

* EDSR-PyTorch ``.pt`` files (EDSR, RCAN, HAN, NLSN): a flat state dict;
* BasicSR / Real-ESRGAN ``.pth``: ``{"params": ...}`` or ``{"params_ema": ...}`` (EMA preferred);
* SwinIR's official ``.pth``: ``{"params": ...}`` or ``{"params_ema": ...}``;
* ESRGAN-family RRDBNet ``.pth`` (Real-ESRGAN x4plus/x2plus/anime_6B, BSRGAN, community models): old
  ESRGAN ``model.N``, BasicSR ``conv_first``/``body.N.rdbK`` or BSRGAN ``RRDB_trunk`` keys;
* Real-ESRGAN's compact network (SRVGGNetCompact) ``.pth``: ``body.N`` keys; a pclup ``config.json``
  beside the file may name what the weights cannot tell (the activation);
* super-image Hub repos: ``config.json`` with ``model_type`` plus ``pytorch_model_{2,3,4}x.pt`` whose keys
  may carry a ``module.`` prefix (``nn.DataParallel``);
* any of the above saved from a ``torch.compile``d or ``DataParallel`` module (``_orig_mod.``/``module.``).

The architecture and its hyper-parameters come from the weights (:attr:`ArchSpec.detect` and
:attr:`ArchSpec.infer_config`), never from the file name.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import IncompatibleCheckpointError, ModelFileError, PclupError
from ..models.registry import ArchSpec, SRModel, StateDict, list_archs
from .formats import CONFIG_NAME, load_weights_strict, model_file, read_config, read_state_dict

# Containers that wrap a state dict, in order of preference (EMA weights first, as BasicSR users expect).
WRAPPER_KEYS = (
    "params_ema", "params-ema", "params", "model_state_dict", "state_dict", "model", "net_g", "net"
)
# Prefixes that wrappers add to every key.
PREFIXES = ("module.", "_orig_mod.", "netG.", "net_g.", "model.")

# super-image's networks differ from the authors' in their input convention: e.g. its EDSR computes on
# [0, 1] and never applies its (stored) mean-shift layers. Per architecture, what our config must say.
# Its HAN and RCAN do subtract the (stored, 255-scaled) mean, but from [0, 1] input.
SUPER_IMAGE_CONVENTIONS: dict[str, dict[str, Any]] = {
    "edsr": {"rgb_range": 1.0, "mean_shift": False},
    "han": {"rgb_range": 1.0, "mean_shift": True},
    "rcan": {"rgb_range": 1.0, "mean_shift": True},
}
SUPER_IMAGE_TYPES = {"edsr": "edsr", "han": "han", "rcan": "rcan"}
SUPER_IMAGE_WEIGHTS = re.compile(r"^pytorch_model_(\d)x\.pt$")


def canonicalize(obj: Any, source: str = "checkpoint") -> StateDict:
    """A flat ``{key: Tensor}`` from whatever a weights file held.

    Unwraps the containers in :data:`WRAPPER_KEYS` (and a single-entry dict), drops non-tensor entries
    (iteration counters, optimiser states are dicts and are dropped with them), and strips prefixes
    shared by every key.
    """
    while isinstance(obj, Mapping) and not _all_tensors(obj):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            dicts = [v for v in obj.values() if isinstance(v, Mapping)]
            if len(dicts) == 1 and not any(isinstance(v, Tensor) for v in obj.values()):
                inner = dicts[0]
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise IncompatibleCheckpointError(
            f"{source}: holds a {type(obj).__name__}, not a dictionary of tensors"
        )
    state = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state:
        raise IncompatibleCheckpointError(f"{source}: holds no tensors")
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def _all_tensors(obj: Mapping[Any, Any]) -> bool:
    return bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def detect_arch(state_dict: Mapping[str, Tensor], source: str = "checkpoint") -> ArchSpec:
    """The first registered architecture whose key layout matches ``state_dict``."""
    for spec in list_archs():
        try:
            if spec.detect(state_dict):
                return spec
        except (KeyError, IndexError, ValueError, AttributeError):
            continue
    names = ", ".join(s.name for s in list_archs())
    keys = ", ".join(list(state_dict)[:3])
    raise IncompatibleCheckpointError(
        f"{source}: unknown architecture: its keys ({keys}, ...) match none of {names}"
    )


def model_from_state_dict(
    state_dict: Mapping[str, Tensor], source: str = "checkpoint", overrides: Mapping[str, Any] | None = None
) -> SRModel:
    """Detect the architecture, read its hyper-parameters, build it and load the weights strictly.

    Args:
        state_dict: A canonical state dict (see :func:`canonicalize`).
        source: What to call it in error messages (a path or repo id).
        overrides: Config fields the weights cannot tell (input range, residual scaling).

    Returns:
        The network in eval mode, float32, on the CPU.
    """
    spec = detect_arch(state_dict, source)
    try:
        inferred = spec.infer_config(state_dict)
    except (KeyError, IndexError, ValueError) as e:
        raise IncompatibleCheckpointError(
            f"{source}: looks like {spec.name} but its shapes do not fit ({e})"
        ) from None
    fields = {f.name for f in dataclasses.fields(inferred)}
    try:  # the same checks as a config.json's (a crafted file could describe an absurd network)
        config = spec.make_config(
            **{**dataclasses.asdict(inferred), **{k: v for k, v in (overrides or {}).items() if k in fields}}
        )
    except PclupError as e:
        raise IncompatibleCheckpointError(f"{source}: looks like {spec.name}, but {e}") from None
    model = spec.build(config)
    load_weights_strict(model, spec.import_foreign(dict(state_dict), config), source)
    return model.eval()


def load_foreign(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SRModel:
    """Load any third-party weights file (see the module docstring for the layouts).

    Without ``overrides``, a pclup ``config.json`` beside the file that names the detected architecture
    supplies them from its ``args`` (what the weights cannot tell, e.g. a compact model's ``act_type``).
    A layout none of pclup's architectures has goes to spandrel when it is installed (see
    :mod:`.spandrel_bridge`).
    """
    state = canonicalize(read_state_dict(path), str(path))
    try:
        spec = detect_arch(state, str(path))
    except IncompatibleCheckpointError as unknown:  # not ours: spandrel's, if it is installed
        from .spandrel_bridge import load_with_spandrel

        return load_with_spandrel(state, str(path), unknown)
    if overrides is None:
        overrides = sibling_args(Path(path), spec.name)
    return model_from_state_dict(state, str(path), overrides)


def sibling_args(path: Path, arch: str) -> dict[str, Any]:
    """The ``args`` of the pclup ``config.json`` beside ``path`` if it names ``arch``; else nothing."""
    try:
        config = read_config(model_file(path.parent, CONFIG_NAME))
    except ModelFileError:
        return {}
    args = config.get("args")
    return dict(args) if config.get("architecture") == arch and isinstance(args, Mapping) else {}


def super_image_overrides(config: Mapping[str, Any], arch: str, source: str) -> dict[str, Any]:
    """Our config fields for a super-image model of architecture ``arch`` with this ``config.json``."""
    out = dict(SUPER_IMAGE_CONVENTIONS.get(arch, {}))
    if "res_scale" in config:
        out["res_scale"] = config["res_scale"]  # checked with the rest of the config
    return out


def load_super_image(config: Mapping[str, Any], weights: str | Path, source: str) -> SRModel:
    """Load a super-image model (its ``config.json`` dict and one ``pytorch_model_{s}x.pt``)."""
    model_type = str(config.get("model_type", "")).lower()
    arch = SUPER_IMAGE_TYPES.get(model_type)
    if arch is None:
        known = ", ".join(sorted(SUPER_IMAGE_TYPES))
        raise IncompatibleCheckpointError(
            f"{source}: super-image model type '{config.get('model_type')}' is not supported "
            f"(pclup reads {known})"
        )
    state = canonicalize(read_state_dict(weights), str(weights))
    spec = detect_arch(state, source)
    if spec.name != arch:
        raise IncompatibleCheckpointError(
            f"{source}: config.json says {model_type} but the weights look like {spec.name}"
        )
    return model_from_state_dict(state, source, super_image_overrides(config, arch, source))
