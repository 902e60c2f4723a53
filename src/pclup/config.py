"""Training configuration: one frozen dataclass, from flags or a TOML file, unknown keys rejected.

The resolved configuration is written with every run (``config.toml`` in the run folder), so a run can
be repeated exactly: ``pclup train --config runs/x/config.toml``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LOSSES = ("l1", "pcl")
PCL_FORMS = ("infonce", "cosine")
SCHEDULES = ("cosine", "multistep", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults train from scratch; ``finetune`` lowers them."""

    # data
    data: tuple[str, ...] = ()  # folders of HR images (recursive)
    scale: int = 4
    patch_size: int = 48  # LR patch side; HR patches are patch_size * scale
    batch_size: int = 16
    workers: int = 0  # data-loader processes (0: in the training process)
    val_set: str | None = "Set5"  # named set or folder; None: no validation
    data_dir: str | None = None  # where named validation sets are found (else $PCLUP_DATA, ../shared/data)
    # model
    arch: str = "edsr-s"  # variant or architecture name (ignored when init is given)
    arch_args: dict[str, Any] = field(default_factory=dict)  # constructor arguments over the variant's
    init: str | None = None  # model spec to start from (finetune)
    # loss
    loss: str = "pcl"  # l1 | pcl
    pcl_weight: float = 0.01  # lambda in L1 + lambda * L_CL (see docs/training.md for why so small)
    pcl_form: str = "infonce"  # infonce | cosine
    pcl_tau: float = 1.0  # InfoNCE temperature
    pcl_samples: int = 3  # K sharpened positives and K blurred negatives (plus HR and bicubic LR)
    pcl_layers: tuple[int, ...] = (4,)  # embedding-network blocks whose features are compared
    pcl_no_grad: bool = False  # the released code's behaviour: L_CL computed but carrying no gradient
    disc_width: int = 32  # embedding/discriminator width (SRGAN's is 64; 32 keeps PCL's cost under 2x for EDSR-S)
    disc_lr: float = 0.0  # 0: the SR network's learning rate, as the released code
    # optimisation
    steps: int = 100_000
    lr: float = 2e-4
    schedule: str = "cosine"  # cosine | multistep | constant
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()  # multistep: steps where the rate is multiplied by gamma
    gamma: float = 0.5
    min_lr: float = 1e-7
    grad_clip: float = 0.0  # max gradient norm; 0: off
    ema: float = 0.999  # EMA decay of the weights that are saved; 0: off
    # run
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 (auto: bf16 where native, else fp32; fp16 needs loss scaling: refused)
    channels_last: bool = True
    out: str = "runs/train"
    log_every: int = 50
    val_every: int = 1000
    save_every: int = 1000

    def __post_init__(self) -> None:
        problems = []
        if self.loss not in LOSSES:
            problems.append(f"loss '{self.loss}' is not one of {', '.join(LOSSES)}")
        if self.pcl_form not in PCL_FORMS:
            problems.append(f"pcl_form '{self.pcl_form}' is not one of {', '.join(PCL_FORMS)}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule '{self.schedule}' is not one of {', '.join(SCHEDULES)}")
        for name in ("scale", "patch_size", "batch_size", "steps", "disc_width", "log_every", "val_every",
                     "save_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        for name in ("workers", "warmup_steps", "pcl_samples", "disc_lr", "min_lr", "grad_clip"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if self.warmup_steps >= self.steps > 0:
            problems.append(
                f"warmup_steps ({self.warmup_steps}) must be fewer than steps ({self.steps}): "
                "the learning rate would never reach lr"
            )
        if not self.lr > 0:
            problems.append("lr must be > 0")
        if not self.gamma > 0:
            problems.append("gamma must be > 0")
        if any(m < 0 for m in self.milestones):
            problems.append("milestones must be >= 0")
        if not 0 <= self.ema < 1:
            problems.append("ema must be in [0, 1)")
        if self.pcl_weight < 0 or self.pcl_tau <= 0:
            problems.append("pcl_weight must be >= 0 and pcl_tau > 0")
        from .contrastive.embedding import NUM_BLOCKS

        if not self.pcl_layers or any(not 0 <= i < NUM_BLOCKS for i in self.pcl_layers):
            problems.append(f"pcl_layers must be blocks of the embedding network, 0 to {NUM_BLOCKS - 1}")
        if problems:
            raise UsageError("bad training configuration: " + "; ".join(problems))


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


_KINDS = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string"}
_PLURALS = {"int": "integers", "float": "finite numbers", "bool": "booleans", "str": "strings"}


def _scalar(name: str, value: Any, kind: str) -> Any:
    """``value`` checked against a field's type (TOML files are user input); ints are accepted as floats."""
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }.get(kind, True)
    if not ok:
        raise UsageError(f"{name} must be {_KINDS[kind]}, not {value!r}")
    return float(value) if kind == "float" else value


def _coerce(name: str, value: Any) -> Any:
    kind = _field_types()[name]
    if "None" in kind and (value is None or isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None  # TOML has no null: optional settings are written as ""
    kind = kind.replace(" | None", "")
    if kind.startswith("dict"):
        if not isinstance(value, Mapping):
            raise UsageError(f"{name} must be a table of settings")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    if kind.startswith("tuple"):
        if isinstance(value, (str, int, float)):
            value = [value]
        item = kind[len("tuple[") :].split(",")[0]
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{name} must be a list of {_PLURALS[item]}, not {value!r}")
        try:
            return tuple(_scalar(name, v, item) for v in value)
        except UsageError:
            raise UsageError(f"{name} must be a list of {_PLURALS[item]}, not {value!r}") from None
    return _scalar(name, value, kind)


def config_from_mapping(values: Mapping[str, Any], source: str = "configuration") -> TrainConfig:
    """A config from a mapping; unknown keys are an error that lists them (and the known ones), values of
    the wrong type or out of range are an error that names them."""
    known = _field_types()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")
    try:
        return TrainConfig(**{k: _coerce(k, v) for k, v in values.items()})
    except UsageError as e:
        raise UsageError(f"{source}: {e}") from None
    except TypeError as e:
        raise UsageError(f"{source}: {e}") from None


def load_config(path: str | Path) -> dict[str, Any]:
    """The key/value table of a TOML config file (flat; a ``[train]`` table is accepted too)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"--config {path}: not valid TOML ({e})") from None
    if set(data) == {"train"} and isinstance(data["train"], dict):
        data = data["train"]
    return data


def resolve_config(
    file: str | Path | None, overrides: Mapping[str, Any], base: Mapping[str, Any] | None = None
) -> TrainConfig:
    """``base`` (a command's own defaults), then the file's values, then the flags the user actually gave
    (``overrides`` holds only those)."""
    values = load_config(file) if file else {}
    config_from_mapping({**(base or {}), **values}, str(file or "configuration"))  # bad keys in the file first
    return config_from_mapping({**(base or {}), **values, **overrides}, "flags")  # the file alone was fine


def to_toml(config: TrainConfig) -> str:
    """The config as TOML (None is written as "", which reads back as None)."""
    lines, tables = [], []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, dict):
            tables += [f"[{f.name}]", *(f"{k} = {_toml_value(v)}" for k, v in value.items())]
            continue
        if value is None:
            value = ""
        lines.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


_TOML_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped (TOML 1.0, "String")."""
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
