"""Architectures pclup does not implement, loaded through spandrel (chaiNNer's model loader) when installed.

:mod:`.foreign` calls :func:`load_with_spandrel` only for a state dict that matches none of pclup's own
architectures, so spandrel is imported on that first miss and never otherwise. The network spandrel builds
is wrapped in a :class:`SpandrelModel`: an :class:`SRModel` whose config (:class:`SpandrelConfig`) carries
what inference needs (scale, colour channels); :func:`spandrel_arch` gives the :class:`ArchSpec` that
describes it. Such a model upscales, benchmarks and shows in ``pclup info``; it cannot be fine-tuned or
converted (pclup has no config for its network).

spandrel's package imports every architecture it knows; two of them (LaMa, RestoreFormer, neither a
super-resolution network) import ``torchvision``, which pclup does not need. Installing spandrel with
``pip install --no-deps spandrel`` keeps torch as it is; when torchvision is then missing, its few names
are replaced by placeholders while spandrel is imported (using them raises), and removed afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NoReturn

from torch import Tensor

from ..errors import IncompatibleCheckpointError, first_line
from ..models.registry import ArchSpec, SRModel

INSTALL_HINT = (
    "pip install --no-deps spandrel einops (see 'Other architectures through spandrel' in docs/usage.md)"
)
# spandrel calls these "SR" and "FaceSR"; its restoration models (denoising, scale 1) are not upscalers.
UPSCALING_PURPOSES = ("SR", "FaceSR")


@dataclass(frozen=True)
class SpandrelConfig:
    """What pclup knows of a network spandrel built.

    Attributes:
        architecture: spandrel's id of the architecture (``"SPAN"``, ``"HAT"``).
        scale: The upscaling factor.
        n_colors: Image channels in and out (1 or 3).
        size_multiple: Input height and width spandrel pads to a multiple of.
        spandrel_version: The spandrel that built it.
    """

    architecture: str
    scale: int
    n_colors: int
    size_multiple: int = 1
    spandrel_version: str = ""


class SpandrelModel(SRModel):
    """A network built by spandrel, called the way spandrel calls it (padded to its size requirements,
    output clamped to [0, 1])."""

    config: SpandrelConfig

    def __init__(self, descriptor: Any, config: SpandrelConfig, fp16: bool, bf16: bool) -> None:
        super().__init__()
        self.config = config
        self.net = descriptor.model  # registered, so .to() and .eval() reach it
        self._descriptor = descriptor  # not a Module: holds the same network
        self.supports_fp16 = fp16
        self.supports_bf16 = bf16

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self._descriptor(x)
        return out


class _StandInMeta(type):
    """Metaclass of the placeholders: attribute lookups give more placeholders (``cv2.INTER_CUBIC``)."""

    def __getattr__(cls, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        return _placeholder(f"{cls.__qualname__}.{item}")


def _placeholder(name: str) -> type:
    def refuse(self: object, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(f"{name} is a stand-in: the package it belongs to is not installed")

    return _StandInMeta(name.rsplit(".", 1)[-1], (), {"__init__": refuse, "__qualname__": name})


class _StandInModule(ModuleType):
    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        return _placeholder(f"{self.__name__}.{item}")


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves a stand-in package for each of ``roots`` and for any of their submodules."""

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = frozenset(roots)

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] not in self.roots:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: ModuleType) -> None:
        pass


@contextlib.contextmanager
def stand_ins_for_missing(packages: Sequence[str]) -> Iterator[None]:
    """While in this context, each of ``packages`` that is not installed imports as a stand-in whose names
    are placeholder classes that raise when used; the stand-ins are removed from ``sys.modules`` after, so
    code that probes for the package still finds none. An installed package is used as it is."""
    missing = [
        name for name in packages if name not in sys.modules and importlib.util.find_spec(name) is None
    ]
    if not missing:
        yield
        return
    finder = _StandInFinder(missing)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n.split(".", 1)[0] in finder.roots]:
            if isinstance(sys.modules[name], _StandInModule):
                del sys.modules[name]


def import_spandrel() -> ModuleType | None:
    """The ``spandrel`` package, or None when it is not installed (or cannot be imported)."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]  # None where it was blocked on purpose
    try:
        if importlib.util.find_spec("spandrel") is None:
            return None
        with stand_ins_for_missing(("torchvision",)):
            return importlib.import_module("spandrel")
    except ImportError:
        return None


def spandrel_arch(model: SpandrelModel) -> ArchSpec:
    """The :class:`ArchSpec` that describes ``model`` (not registered: pclup cannot build or train it)."""
    config = model.config
    return ArchSpec(
        name=f"spandrel:{config.architecture}",
        config_cls=SpandrelConfig,
        model_cls=SpandrelModel,
        paper=f"loaded by spandrel {config.spandrel_version}",
        detect=lambda state: False,
        infer_config=lambda state: config,
        supports_fp16=model.supports_fp16,
        supports_bf16=model.supports_bf16,
        size_multiple=config.size_multiple,
        scales=(config.scale,),
    )


def load_with_spandrel(
    state: Mapping[str, Tensor], source: str, unknown: IncompatibleCheckpointError
) -> SRModel:
    """Build the network of ``state`` with spandrel (``unknown`` is pclup's own "unknown architecture").

    Raises:
        IncompatibleCheckpointError: spandrel is not installed (the message says how to get it), does not
            know the layout either, or knows it as something other than an RGB or gray upscaler.
    """
    spandrel = import_spandrel()
    if spandrel is None:
        raise IncompatibleCheckpointError(f"{unknown}; for the architectures spandrel knows: {INSTALL_HINT}")
    version = getattr(spandrel, "__version__", "")
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(dict(state))
    except spandrel.UnsupportedModelError:
        raise IncompatibleCheckpointError(f"{unknown}, nor any that spandrel {version} knows") from None
    except Exception as e:  # spandrel's loaders index the dict freely: a crafted file fails anywhere
        raise IncompatibleCheckpointError(f"{source}: spandrel could not load it: {first_line(e)}") from None
    arch = descriptor.architecture.id
    purpose = getattr(descriptor, "purpose", "?")
    if purpose not in UPSCALING_PURPOSES or not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise IncompatibleCheckpointError(
            f"{source}: spandrel loads it as {arch}, a {purpose} model; pclup runs super-resolution "
            "models only"
        )
    channels = descriptor.input_channels
    if descriptor.output_channels != channels or channels not in (1, 3):
        raise IncompatibleCheckpointError(
            f"{source}: {arch} maps {channels} to {descriptor.output_channels} channels; pclup upscales "
            "RGB or gray images"
        )
    config = SpandrelConfig(
        architecture=arch,
        scale=int(descriptor.scale),
        n_colors=int(channels),
        size_multiple=int(descriptor.size_requirements.multiple_of),
        spandrel_version=version,
    )
    fp16, bf16 = bool(descriptor.supports_half), bool(descriptor.supports_bfloat16)
    model = SpandrelModel(descriptor, config, fp16, bf16)
    return model.float().eval()
