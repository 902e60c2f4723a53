"""Help pages speak plain words: type names users know, every default shown, help text printed as written."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from pclup.cli import app

COMMANDS = ["upscale", "bench", "train", "finetune", "models", "info", "convert", "export", "compare"]
runner = CliRunner()


def _help(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_no_python_annotations(command: str) -> None:
    text = _help(command)
    assert not re.search(r"<(bool|str|int|float|path|list\[\w+\])>", text), text
    assert "{" not in text.splitlines()[0], text  # usage line: INPUT..., not {INPUT...}...


def test_help_prints_brackets_as_written() -> None:
    assert "owner/name[@revision]" in _help("upscale")


def test_usage_line_names_the_arguments() -> None:
    assert _help("upscale").splitlines()[0] == "Usage: pclup upscale [OPTIONS] INPUT..."
    assert _help("info").splitlines()[0] == "Usage: pclup info [OPTIONS] MODEL"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_with_a_default_shows_it(command: str) -> None:
    text = " ".join(_help(command).split())
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    for param in click_command.params:
        if param.param_type_name != "option" or getattr(param, "is_flag", False) or param.default in (None, ()):
            continue
        default = param.default
        shown = ", ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        assert f"default: {shown}" in text, (param.name, text)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_says_what_happens_without_it(command: str) -> None:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    silent = [
        param.name
        for param in click_command.params
        if param.param_type_name == "option"
        and not getattr(param, "is_flag", False)
        and not param.required
        and not isinstance(param.show_default, str)
        and param.default in (None, ())
        and "default" not in (param.help or "").lower()
    ]
    assert not silent, silent
