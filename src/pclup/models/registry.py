"""The architecture registry: every network pclup can build, each registered explicitly.

Three kinds of names live here:

* an **architecture** (``edsr``, ``rcan``, ...): a network class, its frozen config dataclass, and the
  functions that recognise its published checkpoints (:class:`ArchSpec`);
* a **variant** (``edsr-s``, ``edsr-l``, ``swinir-m``, ...): an architecture with the hyper-parameters of
  one paper row (:class:`Variant`); training takes these (``--arch``);
* a **pretrained model** (``edsr-s-x4``, ...): a variant at one scale plus where its weights come from
  (:class:`~pclup.weights.Pretrained`, in :mod:`pclup.weights`); upscaling and benchmarking take these.

Registration is explicit (``pclup.models.__init__`` lists every architecture module); nothing is found by
scanning folders or by import side effects.

Contract of every registered network: ``model(x)`` takes ``(B, C, H, W)`` float in ``[0, 1]`` and returns
``(B, C, H*s, W*s)`` in the same range, not clamped. The network keeps its config as ``model.config``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from torch import Tensor, nn

from ..archinfo import close_matches
from ..errors import UnknownArchitectureError, UsageError

StateDict = dict[str, Tensor]


class SRConfig(Protocol):
    """What every architecture's config is: a frozen dataclass with an ``int`` field ``scale``."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def scale(self) -> int: ...


class SRModel(nn.Module):
    """Base class of every registered network: an ``nn.Module`` that keeps its config as ``config``.

    Each architecture narrows ``config`` to its own config class."""

    config: SRConfig


def _identity(state_dict: StateDict, config: Any) -> StateDict:
    return state_dict


def arg(default: Any, low: float, high: float, *, max_len: int = 0) -> Any:
    """A config field whose value (each item, for a tuple) must lie in ``[low, high]``; ``max_len`` bounds
    a tuple's length. Every number in a config has such bounds: :meth:`ArchSpec.make_config` checks them, so
    that a config read from a file can never ask for an absurd network."""
    return field(default=default, metadata={"range": (low, high), "max_len": max_len})


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _checked(name: str, hint: Any, value: Any, meta: Mapping[str, Any]) -> Any:
    """``value`` as the field's type (an int where a float is declared becomes a float); ValueError if it
    is of another type or out of the field's bounds."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, not {_show(value)}")
        return value
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= meta["max_len"]:
            raise ValueError(f"{name} must be a list of 1 to {meta['max_len']} numbers, not {_show(value)}")
        return tuple(_checked(name, typing.get_args(hint)[0], v, meta) for v in value)
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            kind = "true or false" if hint is bool else "a string"
            raise ValueError(f"{name} must be {kind}, not {_show(value)}")
        return value
    low, high = meta["range"]
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer from {low} to {high}, not {_show(value)}")
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be a number from {low} to {high}, not {_show(value)}")
    return float(value)


@dataclass(frozen=True)
class ArchSpec:
    """One registered architecture.

    Attributes:
        name: Registry id, lower case (``"edsr"``). Written to ``config.json`` as ``architecture``.
        config_cls: Frozen dataclass of the constructor arguments; it has an ``int`` field ``scale``.
        model_cls: The network class (an :class:`SRModel`); ``model_cls(config)`` builds it.
        paper: Short citation of the paper the architecture comes from.
        detect: True when a (canonicalised) third-party state dict has this architecture's key layout.
        infer_config: Hyper-parameters read from a third-party state dict's key names and tensor shapes.
        import_foreign: Maps a third-party state dict onto this network's own keys (identity when they
            agree).
        supports_fp16: The network is known to stay finite and accurate in float16.
        supports_bf16: The network trains in bfloat16 autocast (``--precision auto`` uses it for training
            where the device computes bf16 natively; upscaling never picks bf16 on its own: see
            :mod:`pclup.device`).
        size_multiple: Input height and width the network needs a multiple of (it pads internally if 1).
        scales: The upscaling factors a config may ask for (the config class may narrow them further).
    """

    name: str
    config_cls: type
    model_cls: type[SRModel]
    paper: str
    detect: Callable[[Mapping[str, Tensor]], bool]
    infer_config: Callable[[Mapping[str, Tensor]], Any]
    import_foreign: Callable[[StateDict, Any], StateDict] = _identity
    supports_fp16: bool = True
    supports_bf16: bool = True
    size_multiple: int = 1
    scales: tuple[int, ...] = (2, 3, 4, 8)

    def make_config(self, **kwargs: Any) -> Any:
        """Build this architecture's config from constructor arguments of any origin (a variant, flags, a
        ``config.json``), checked first: each must be of its field's type (JSON lists become tuples) and
        within its bounds (:func:`arg`), ``scale`` one of :attr:`scales`.

        Raises:
            UnknownArchitectureError: an argument the architecture does not have (the error lists them).
            UsageError: a value of the wrong type or out of bounds, or values that do not fit together.
        """
        fields = {f.name: f for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(kwargs) - set(fields))
        if unknown:
            raise UnknownArchitectureError(
                f"architecture '{self.name}' has no argument(s) {', '.join(unknown)}; "
                f"it takes {', '.join(sorted(fields))}"
            )
        hints = typing.get_type_hints(self.config_cls)
        try:
            scale = kwargs.get("scale", fields["scale"].default)
            if not isinstance(scale, int) or isinstance(scale, bool) or scale not in self.scales:
                allowed = ", ".join(map(str, self.scales))
                raise ValueError(f"scale must be one of {allowed}, not {_show(scale)}")
            others = {k: v for k, v in kwargs.items() if k != "scale"}
            checked = {k: _checked(k, hints[k], v, fields[k].metadata) for k, v in others.items()}
            return self.config_cls(**checked, scale=scale)
        except (TypeError, ValueError) as e:
            raise UsageError(f"bad {self.name} configuration: {e}") from None

    def build(self, config: Any) -> SRModel:
        """Build the network from a config of this architecture (random weights)."""
        if not isinstance(config, self.config_cls):
            raise TypeError(f"expected {self.config_cls.__name__}, got {type(config).__name__}")
        return self.model_cls(config)


@dataclass(frozen=True)
class Variant:
    """A named set of hyper-parameters of one architecture, e.g. EDSR-S = EDSR 16 blocks x 64 channels.

    Attributes:
        name: ``"edsr-s"``; lower case, no scale in it.
        arch: The :class:`ArchSpec` name.
        args: Constructor arguments other than ``scale``.
        description: One line for ``pclup models``.
        scales: The scales the variant is defined for.
    """

    name: str
    arch: str
    args: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    scales: tuple[int, ...] = (2, 3, 4)


_ARCHS: dict[str, ArchSpec] = {}
_VARIANTS: dict[str, Variant] = {}


def register_arch(spec: ArchSpec, variants: list[Variant] | tuple[Variant, ...] = ()) -> None:
    """Add an architecture and its named variants; a name used twice is a programming error."""
    if spec.name in _ARCHS:
        raise ValueError(f"architecture '{spec.name}' is registered twice")
    hints = typing.get_type_hints(spec.config_cls)
    if hints.get("scale") is not int:
        raise ValueError(f"{spec.config_cls.__name__} needs an int field 'scale'")
    for f in dataclasses.fields(spec.config_cls):
        numeric = hints[f.name] in (int, float) or typing.get_origin(hints[f.name]) is tuple
        if f.name != "scale" and numeric and "range" not in f.metadata:
            raise ValueError(f"{spec.config_cls.__name__}.{f.name} has no bounds: declare it with arg()")
    _ARCHS[spec.name] = spec
    for variant in variants:
        if variant.name in _VARIANTS or variant.name in _ARCHS and variant.name != spec.name:
            raise ValueError(f"variant '{variant.name}' is registered twice")
        if variant.arch != spec.name:
            raise ValueError(f"variant '{variant.name}' belongs to '{variant.arch}', not '{spec.name}'")
        if not set(variant.scales) <= set(spec.scales):
            raise ValueError(f"variant '{variant.name}' has scales {spec.name} does not support")
        spec.make_config(scale=variant.scales[0], **dict(variant.args))  # fail early on a bad variant
        _VARIANTS[variant.name] = variant


def list_archs() -> list[ArchSpec]:
    """Every registered architecture, in registration order (also the order detection tries them)."""
    return list(_ARCHS.values())


def list_variants() -> list[Variant]:
    """Every registered variant, in registration order."""
    return list(_VARIANTS.values())


def get_arch(name: str) -> ArchSpec:
    """The architecture registered as ``name``; the error lists close matches."""
    try:
        return _ARCHS[name.lower()]
    except KeyError:
        raise UnknownArchitectureError(
            f"unknown architecture '{name}'{close_matches(name, list(_ARCHS))}; "
            f"known: {', '.join(_ARCHS)}"
        ) from None


def get_variant(name: str) -> Variant:
    """The variant registered as ``name``; an architecture name gives its defaults as a variant."""
    key = name.lower()
    if key in _VARIANTS:
        return _VARIANTS[key]
    if key in _ARCHS:
        return Variant(name=key, arch=key, description=_ARCHS[key].paper)
    known = list(_VARIANTS) + [a for a in _ARCHS if a not in _VARIANTS]
    raise UnknownArchitectureError(
        f"unknown architecture '{name}'{close_matches(name, known)}; known: {', '.join(known)}"
    )


def create_model(name: str, scale: int = 4, **overrides: Any) -> SRModel:
    """Build a network with random weights from a variant or architecture name.

    Args:
        name: A variant (``"edsr-s"``) or architecture (``"edsr"``) name.
        scale: Upscaling factor.
        **overrides: Constructor arguments that replace the variant's.

    Returns:
        The network, in training mode, on the CPU, in float32.

    Raises:
        UnknownArchitectureError: ``name`` or an argument is unknown.

    >>> model = create_model("edsr-s", scale=2)
    >>> model.config.n_resblocks
    16
    """
    variant = get_variant(name)
    spec = get_arch(variant.arch)
    config = spec.make_config(**{**dict(variant.args), **overrides, "scale": scale})
    return spec.build(config)


def arch_of(model: nn.Module) -> ArchSpec:
    """The registered architecture of a built network (looked up by its config class)."""
    config = getattr(model, "config", None)
    for spec in _ARCHS.values():
        if isinstance(config, spec.config_cls):
            return spec
    raise UnknownArchitectureError(f"{type(model).__name__} is not a registered pclup architecture")


def count_parameters(model: nn.Module) -> int:
    """Trainable and fixed parameters, as papers count them (buffers such as index tables excluded)."""
    return sum(p.numel() for p in model.parameters())


def colour_channels(config: Any) -> int:
    """The number of image channels a network takes (``n_colors`` or SwinIR's ``in_chans``)."""
    return int(getattr(config, "n_colors", getattr(config, "in_chans", 3)))
