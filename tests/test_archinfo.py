"""The torch-free table of variants that `pclup models` lists agrees with the registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pclup.archinfo import VARIANTS, close_matches, variant_info
from pclup.models import get_arch, list_variants
from pclup.models.params import variant_parameters


def test_the_table_repeats_the_registry_exactly() -> None:
    registry = {v.name: v for v in list_variants()}
    assert [v.name for v in VARIANTS] == list(registry)
    for info in VARIANTS:
        v = registry[info.name]
        assert (info.arch, info.scales, info.description) == (v.arch, tuple(v.scales), v.description)
        assert info.paper == get_arch(v.arch).paper
        assert info.parameters == {s: variant_parameters(v.name, s) for s in v.scales}, info.name


def test_the_architectures_repeat_the_registry_exactly() -> None:
    import dataclasses

    from pclup.archinfo import ARCHS
    from pclup.models import list_archs

    names = [a if isinstance(a, str) else a.name for a in list_archs()]
    assert list(ARCHS) == names
    for name, info in ARCHS.items():
        spec = get_arch(name)
        assert (info.paper, info.supports_fp16, info.supports_bf16) == (
            spec.paper, spec.supports_fp16, spec.supports_bf16)
        config = spec.config_cls(scale=4)
        assert info.defaults == {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}, name


def test_info_of_packaged_models_without_torch_matches_loading_them() -> None:
    import dataclasses

    from pclup.archinfo import packaged_model_info
    from pclup.models import count_parameters
    from pclup.weights import list_pretrained, load_model

    packaged = [p for p in list_pretrained() if p.packaged]
    assert packaged
    for p in packaged:
        fast = packaged_model_info(p.folder(), p.name, p.source)
        loaded = load_model(p.name)
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(loaded.model.config).items()}
        assert fast == {"name": loaded.name, "source": loaded.source, "architecture": loaded.arch.name,
                        "scale": loaded.scale, "parameters": count_parameters(loaded.model),
                        "supports_fp16": loaded.arch.supports_fp16, "supports_bf16": loaded.arch.supports_bf16,
                        "config": config}, p.name


def test_lookup_and_close_matches() -> None:
    assert variant_info("EDSR-S") is not None and variant_info("nope") is None
    assert close_matches("edsr", ["edsr-s", "edsr-l", "rcan"]) == " (did you mean: edsr-s, edsr-l?)"
    assert close_matches("zzz", ["edsr-s"]) == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "code", "shows"),
    [
        (["models", "--json"], 0, '"default-x4"'),
        (["info", "default-x4"], 0, "140,528 parameters"),
        (["--help"], 0, "upscale"),
        (["upscale", "no-such-photo.png"], 2, "no-such-photo.png: no such file or folder"),
        (["upscale", "{here}", "-m", "no-such-model"], 2, "unknown model 'no-such-model'"),
        (["upscale", "{here}", "-m", "./no-such.pth"], 1, "./no-such.pth: no such file or folder"),
        (["upscale", "{here}", "--tile", "abc"], 2, "--tile 'abc' must be"),
        (["upscale", "{here}", "--ext", "gif"], 2, "--ext 'gif' is not one of"),
        (["upscale", "{here}", "-m", "edsr-s-x4", "--denoise", "0.5"], 2, "--denoise blends the default"),
        (["info", "no-such-model"], 2, "unknown model 'no-such-model'"),
        (["bench", "-m", "bicubic", "--set", "Set6"], 2, "unknown test set 'Set6'"),
        (["bench", "-m", "bicubic", "--set", "{here}", "--degrade", "jpeg0"], 2, "--degrade 'jpeg0'"),
        (["bench", "-m", "no-such-model", "--set", "{here}"], 2, "unknown model 'no-such-model'"),
        (["finetune", "--data", "{here}/none"], 2, "none does not exist"),
        (["finetune", "--data", "{here}", "-m", "no-such-model"], 2, "unknown model 'no-such-model'"),
        (["train", "--data", "{here}", "--degradation", "none.toml"], 2, "degradation file none.toml: no such"),
    ],
)
def test_commands_that_need_no_tensor_do_not_import_torch(args: list[str], code: int, shows: str,
                                                          tmp_path) -> None:
    args = [a.replace("{here}", str(tmp_path)) for a in args]
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "pclup", *args], capture_output=True,
                         text=True, cwd=tmp_path)
    assert run.returncode == code, run.stderr[-500:]
    modules = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "pclup.cli" in modules
    assert "torch" not in modules
    assert shows in (run.stdout if code == 0 else run.stderr)
