"""Training configuration: five small frozen sections, from flags or a TOML file, checked in one place.

A recipe is a TOML file with one table per section (:func:`to_toml` writes every setting)::

    [data]    folders, scale, patch_size, batch_size, workers, val_set, data_dir
    [model]   arch, arch_args (a [model.arch_args] table), init
    [loss]    kind, weight, grad_ratio, warmup_steps, form, tau, positives, negatives, layers, no_grad,
              disc_width, disc_lr, d_batchnorm, cl_batchnorm
    [optim]   steps, lr, schedule, warmup_steps, milestones, gamma, min_lr, grad_clip, ema
    [run]     seed, device, precision, channels_last, out, log_every, val_every, save_every

The flat form of earlier versions (one key per setting: ``data``, ``loss``, ``pcl_weight``... see
:data:`FLAT`; the command line's flags have the same names) is read as well, so older recipes, run folders
and model cards still load (their one ``samples`` / ``pcl_samples`` sets both ``loss.positives`` and
``loss.negatives``). Unknown keys, values of the wrong type and values out of range are one-line
errors that name the key as it was written.

The resolved configuration is written with every run (``config.toml`` in the run folder), so a run can
be repeated exactly: ``pclup train --config runs/x/config.toml``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LOSSES = ("l1", "l2", "pcl")
PCL_FORMS = ("infonce", "cosine")
D_BATCHNORM = ("joint", "separate")
CL_BATCHNORM = ("running", "grouped")
NEGATIVES_FROM = ("auto", "blur", "degraded")
SCHEDULES = ("cosine", "multistep", "constant")
EMBEDDING_BLOCKS = 8  # the embedding network's feature blocks (pclup.contrastive.embedding.NUM_BLOCKS)
AUTO_GRAD_RATIO = 0.1  # the target of ``--pcl-lambda auto`` when no --pcl-grad-ratio is given


@dataclass(frozen=True)
class DataConfig:
    """What the network learns from and is validated on."""

    folders: tuple[str, ...] = ()  # folders of HR images (recursive)
    lr_folders: tuple[str, ...] = ()  # paired data: LR images matched to HR by name, one folder per HR folder
    degradation: str = "bicubic"  # how LR is made from HR: bicubic | realistic | a TOML file of ranges
    scale: int = 4
    patch_size: int = 48  # LR patch side; HR patches are patch_size * scale
    batch_size: int = 16
    workers: int = 0  # data-loader processes (0: in the training process)
    val_set: str | None = "Set5"  # named set or folder; None: no validation
    val_degrade: str | None = None  # validate on a degraded variant: realistic | jpegQ | a TOML file (seed 0)
    data_dir: str | None = None  # searched first for named validation sets, then $PCLUP_DATA etc.


@dataclass(frozen=True)
class ModelConfig:
    """The SR network: a fresh ``arch``, or the model ``init`` names (then ``arch`` is not used)."""

    arch: str = "edsr-s"  # variant or architecture name
    arch_args: dict[str, Any] = field(default_factory=dict)  # constructor arguments over the variant's
    init: str | None = None  # model spec to start from (finetune)


@dataclass(frozen=True)
class LossConfig:
    """L1, or L1 + weight * L_CL with the embedding network (the discriminator) that L_CL needs."""

    kind: str = "pcl"  # l1 | l2 (mean squared error: what PSNR measures) | pcl (L1 + lambda * L_CL)
    weight: float = 0.01  # lambda in L1 + lambda * L_CL (see docs/training.md for why so small)
    grad_ratio: float = 0.0  # > 0: lambda set each step so that |grad L_CL| = grad_ratio * |grad L1| on SR
    warmup_steps: int = 0  # steps training the embedding network alone (SR frozen) before L_CL reaches SR
    form: str = "infonce"  # infonce | cosine
    tau: float = 1.0  # InfoNCE temperature
    positives: int = 3  # sharpened copies of HR among the positives, besides HR itself (0: HR only)
    negatives: int = 3  # blurred copies of HR among the negatives, besides the bicubic-upsampled LR
    layers: tuple[int, ...] = (4,)  # embedding-network blocks whose features are compared
    no_grad: bool = False  # the released code's behaviour: L_CL computed but carrying no gradient
    disc_width: int = 32  # embedding-net width (SRGAN's is 64; 32 keeps PCL's cost under 2x for EDSR-S)
    disc_lr: float = 0.0  # 0: the SR network's learning rate, as the released code
    d_batchnorm: str = "joint"  # D step: joint (real and fake in one BatchNorm batch) | separate (released)
    d_every: int = 1  # the discriminator steps on every d_every-th training step (1: every step, the method)
    cl_batchnorm: str = "running"  # L_CL: running statistics | grouped (released: batch statistics per group)
    negatives_from: str = "auto"  # blur (blurred HR) | degraded (blurred, noisy, JPEG'd HR) | auto: degraded
    #                               when the LR comes from a degradation pipeline or paired data


@dataclass(frozen=True)
class OptimConfig:
    """Adam's schedule, gradient clipping and the EMA of the saved weights."""

    steps: int = 100_000
    lr: float = 2e-4
    schedule: str = "cosine"  # cosine | multistep | constant
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()  # multistep: steps where the rate is multiplied by gamma
    gamma: float = 0.5
    min_lr: float = 1e-7
    grad_clip: float = 0.0  # max gradient norm; 0: off
    ema: float = 0.999  # EMA decay of the weights that are saved; 0: off


@dataclass(frozen=True)
class RunConfig:
    """Where and how the run goes: seed, device, precision, run folder, how often to log, validate, save."""

    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 where native, else fp32) | fp32 | bf16 (fp16 needs loss scaling)
    channels_last: bool = True
    out: str = "runs/train"
    log_every: int = 50
    val_every: int = 1000
    save_every: int = 1000


SECTIONS: dict[str, type] = {
    "data": DataConfig, "model": ModelConfig, "loss": LossConfig, "optim": OptimConfig, "run": RunConfig,
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults train from scratch; ``finetune`` lowers them."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError(problems)


class ConfigError(UsageError):
    """Settings out of range; ``problems`` holds ``(section.field, what is wrong)`` for each."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(_describe(problems, {}))


def _describe(problems: list[tuple[str, str]], names: Mapping[str, str]) -> str:
    """The problems in one line, each key as it was written (``names``), else as ``section.field``."""
    return "bad training configuration: " + "; ".join(f"{names.get(k, k)} {what}" for k, what in problems)


def _problems(cfg: TrainConfig) -> list[tuple[str, str]]:
    """Every rule a configuration must follow, in one place (types are checked when it is read)."""
    loss, o = cfg.loss, cfg.optim
    problems: list[tuple[str, str]] = []

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            problems.append((key, what))

    def value(key: str) -> Any:
        section, name = key.split(".")
        return getattr(getattr(cfg, section), name)

    need(loss.kind in LOSSES, "loss.kind", f"'{loss.kind}' is not one of {', '.join(LOSSES)}")
    need(loss.d_batchnorm in D_BATCHNORM, "loss.d_batchnorm",
         f"'{loss.d_batchnorm}' is not one of {', '.join(D_BATCHNORM)}")
    need(loss.cl_batchnorm in CL_BATCHNORM, "loss.cl_batchnorm",
         f"'{loss.cl_batchnorm}' is not one of {', '.join(CL_BATCHNORM)}")
    need(loss.negatives_from in NEGATIVES_FROM, "loss.negatives_from",
         f"'{loss.negatives_from}' is not one of {', '.join(NEGATIVES_FROM)}")
    d = cfg.data
    need(d.degradation in ("bicubic", "realistic") or d.degradation.lower().endswith(".toml"),
         "data.degradation",
         f"'{d.degradation}' is not bicubic, realistic or a .toml file")
    if d.val_degrade:
        from .datasets import check_degrade

        try:
            check_degrade(d.val_degrade)
        except UsageError:
            problems.append(("data.val_degrade", f"'{d.val_degrade}' is not realistic, jpegQ or a .toml"
                                                 " file"))
    need(not (d.lr_folders and d.degradation != "bicubic"), "data.degradation",
         f"'{d.degradation}' cannot be used with paired data (the LR images are given)")
    need(not d.lr_folders or len(d.lr_folders) == len(d.folders), "data.lr_folders",
         f"gives {len(d.lr_folders)} folder(s) for {len(d.folders)} HR folder(s): "
         "one LR folder per HR folder")
    need(loss.form in PCL_FORMS, "loss.form", f"'{loss.form}' is not one of {', '.join(PCL_FORMS)}")
    need(o.schedule in SCHEDULES, "optim.schedule", f"'{o.schedule}' is not one of {', '.join(SCHEDULES)}")
    for key in ("data.scale", "data.patch_size", "data.batch_size", "optim.steps", "loss.disc_width",
                "loss.d_every", "run.log_every", "run.val_every", "run.save_every"):
        need(value(key) >= 1, key, "must be >= 1")
    for key in ("data.workers", "optim.warmup_steps", "loss.warmup_steps", "loss.grad_ratio",
                "loss.positives", "loss.negatives", "loss.disc_lr", "optim.min_lr", "optim.grad_clip"):
        need(value(key) >= 0, key, "must be >= 0")
    need(not o.warmup_steps >= o.steps > 0, "optim.warmup_steps",
         f"({o.warmup_steps}) must be fewer than steps ({o.steps}): the learning rate would never reach lr")
    need(o.lr > 0, "optim.lr", "must be > 0")
    need(o.gamma > 0, "optim.gamma", "must be > 0")
    need(all(m >= 0 for m in o.milestones), "optim.milestones", "must be >= 0")
    need(0 <= o.ema < 1, "optim.ema", "must be in [0, 1)")
    need(loss.weight >= 0, "loss.weight", "must be >= 0")
    need(loss.tau > 0, "loss.tau", "must be > 0")
    need(bool(loss.layers) and all(0 <= i < EMBEDDING_BLOCKS for i in loss.layers), "loss.layers",
         f"must be blocks of the embedding network, 0 to {EMBEDDING_BLOCKS - 1}")
    return problems


# --- reading: flat or nested keys, types checked ---------------------------------------------------------

#: The flat keys of earlier recipes, run folders and model cards, and the command line's flag names:
#: ``key -> (section, field)``. Most are the field's own name; these differ.
_RENAMED = {"data": ("data", "folders"), "data_lr": ("data", "lr_folders"),
            "pcl_negatives_from": ("loss", "negatives_from"), "loss": ("loss", "kind"),
            "pcl_weight": ("loss", "weight"),
            "pcl_form": ("loss", "form"), "pcl_tau": ("loss", "tau"), "pcl_positives": ("loss", "positives"),
            "pcl_negatives": ("loss", "negatives"), "pcl_grad_ratio": ("loss", "grad_ratio"),
            "pcl_warmup_steps": ("loss", "warmup_steps"), "pcl_d_batchnorm": ("loss", "d_batchnorm"),
            "pcl_d_every": ("loss", "d_every"),
            "pcl_cl_batchnorm": ("loss", "cl_batchnorm"),
            "pcl_layers": ("loss", "layers"), "pcl_no_grad": ("loss", "no_grad")}
FLAT: dict[str, tuple[str, str]] = {
    **{f.name: (s, f.name) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)
       if (s, f.name) not in _RENAMED.values()},
    **_RENAMED,
}

#: Settings of earlier versions that now set two: ``(section, old field) -> new fields``. Read, never written.
_SPLIT = {("loss", "samples"): ("positives", "negatives")}  # one count for both sample sets
_SPLIT_FLAT = {"samples": ("loss", "samples"), "pcl_samples": ("loss", "samples")}

_KINDS = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}
_PLURALS = {int: "integers", float: "finite numbers", bool: "booleans", str: "strings"}


def _hints(section: str) -> dict[str, Any]:
    return typing.get_type_hints(SECTIONS[section])


def default(key: str) -> Any:
    """The default of a setting, by its flat name (``steps``) or as ``section.field`` (``optim.steps``)."""
    section, name = FLAT[key] if key in FLAT else key.split(".", 1)
    return getattr(SECTIONS[section](), name)


def _scalar(name: str, value: Any, kind: type) -> Any:
    """``value`` checked against a field's type (TOML files are user input); ints are accepted as floats."""
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
    }.get(kind, True)
    if not ok:
        raise UsageError(f"{name} must be {_KINDS[kind]}, not {value!r}")
    return float(value) if kind is float else value


def _coerce(name: str, value: Any, hint: Any) -> Any:
    args = typing.get_args(hint)
    if type(None) in args:  # optional: TOML has no null, so None is written as "" (and "none" reads as it)
        if value is None or isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise UsageError(f"{name} must be a table of settings")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{name} must be a list of {_PLURALS[item]}, not {value!r}")
        try:
            return tuple(_scalar(name, v, item) for v in value)
        except UsageError:
            raise UsageError(f"{name} must be a list of {_PLURALS[item]}, not {value!r}") from None
    return _scalar(name, value, hint)


Settings = dict[str, dict[str, Any]]  # section -> field -> value


def _read(values: Mapping[str, Any], source: str) -> tuple[Settings, dict[str, str]]:
    """``values`` (section tables, flat keys, or both) as settings by section, their types checked; and the
    key each was written as (``optim.steps`` or ``steps``), for messages."""
    settings: Settings = {s: {} for s in SECTIONS}
    names: dict[str, str] = {}
    unknown = []
    entries: list[tuple[str, str, str, Any]] = []  # (as written, section, field, value)
    for key, value in values.items():
        if key in SECTIONS and isinstance(value, Mapping):
            entries += [(f"{key}.{k}", key, k, v) for k, v in value.items()]
        elif key in FLAT:
            entries.append((key, *FLAT[key], value))
        elif key in _SPLIT_FLAT:
            entries.append((key, *_SPLIT_FLAT[key], value))
        else:
            unknown.append(key)
    entries = [(written, section, new, value) for written, section, name, value in entries
               for new in _SPLIT.get((section, name), (name,))]
    for written, section, name, value in entries:
        hints = _hints(section)
        if name not in hints:
            unknown.append(written)
            continue
        if name in settings[section]:
            first = names[f"{section}.{name}"]
            raise UsageError(f"{source}: {first} and {written} are the same setting: keep one of them")
        try:
            settings[section][name] = _coerce(written, value, hints[name])
        except UsageError as e:
            raise UsageError(f"{source}: {e}") from None
        names[f"{section}.{name}"] = written
    if unknown:
        known = ", ".join(f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls))
        raise UsageError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; known keys: {known}")
    return settings, names


def read_settings(values: Mapping[str, Any], source: str = "configuration") -> Settings:
    """The settings that ``values`` (flat or nested keys) gives, by section: ``{"optim": {"steps": 10}}``."""
    return _read(values, source)[0]


def _build(parts: list[tuple[Settings, dict[str, str]]], source: str) -> TrainConfig:
    """A config from settings read by :func:`_read`, the later ones over the earlier."""
    settings: Settings = {s: {} for s in SECTIONS}
    names: dict[str, str] = {}
    for part, part_names in parts:
        for section, values in part.items():
            settings[section].update(values)
        names.update(part_names)
    try:
        return TrainConfig(**{s: cls(**settings[s]) for s, cls in SECTIONS.items()})
    except ConfigError as e:
        raise UsageError(f"{source}: {_describe(e.problems, names)}") from None


def config_from_mapping(values: Mapping[str, Any], source: str = "configuration") -> TrainConfig:
    """A config from a mapping of section tables or flat keys; unknown keys are an error that lists them
    (and the known ones), values of the wrong type or out of range are an error that names them."""
    return _build([_read(values, source)], source)


def load_config(path: str | Path) -> dict[str, Any]:
    """The key/value table of a TOML config file (a ``[train]`` table around it is accepted too)."""
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
    (``overrides`` holds only those; flat keys, the flags' names, or section tables)."""
    source = str(file or "configuration")
    parts = [_read(base or {}, "defaults"), _read(load_config(file) if file else {}, source)]
    _build(parts, source)  # bad values in the file first
    return _build([*parts, _read(overrides, "flags")], "flags")  # the file alone was fine


# --- writing ---------------------------------------------------------------------------------------------


def to_toml(config: TrainConfig) -> str:
    """The config as TOML, one table per section (None is written as "", which reads back as None). A run
    that starts from a model (``init``) does not write ``arch``, which it does not use."""
    lines: list[str] = []
    for section in SECTIONS:
        values = getattr(config, section)
        tables: list[str] = []
        lines.append(f"[{section}]")
        for f in dataclasses.fields(values):
            value = getattr(values, f.name)
            if section == "model" and f.name == "arch" and config.model.init:
                continue
            if isinstance(value, dict):
                if value:
                    rows = [f"{k} = {_toml_value(v)}" for k, v in value.items()]
                    tables += ["", f"[{section}.{f.name}]", *rows]
                continue
            lines.append(f"{f.name} = {_toml_value('' if value is None else value)}")
        lines += [*tables, ""]
    return "\n".join(lines)


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
