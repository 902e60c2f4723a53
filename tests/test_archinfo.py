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


def test_lookup_and_close_matches() -> None:
    assert variant_info("EDSR-S") is not None and variant_info("nope") is None
    assert close_matches("edsr", ["edsr-s", "edsr-l", "rcan"]) == " (did you mean: edsr-s, edsr-l?)"
    assert close_matches("zzz", ["edsr-s"]) == ""


@pytest.mark.slow
def test_pclup_models_does_not_import_torch() -> None:
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "pclup", "models", "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    modules = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "pclup.cli" in modules
    assert "torch" not in modules
    assert '"default-x4"' in run.stdout
