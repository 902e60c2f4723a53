"""Help pages in plain words: ``--scale NUMBER``, ``--tile TEXT [default: auto]``, ``INPUT...``.

Typer's own help shows Python annotations (``<bool>``, ``<list[str]>``) and reads option help as Rich
markup, which swallows text in square brackets such as ``owner/name[@revision]``. The command class here
writes the usage line and the option table itself, from the parameters' public attributes, so every
option shows a plain type word and its default, and help text is printed as written.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

_WORDS = {int: "INTEGER", float: "NUMBER", str: "TEXT", Path: "PATH", bool: ""}
_CLICK_WORDS = {"integer": "INTEGER", "float": "NUMBER", "text": "TEXT", "path": "PATH", "boolean": ""}


def _annotation_word(annotation: Any) -> str | None:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if args and typing.get_origin(annotation) is not None:  # Optional[X], X | None, list[X]
        return _annotation_word(args[0])
    return _WORDS.get(annotation)


def type_word(param: Any) -> str:
    """The word shown after an option: INTEGER, NUMBER, TEXT, PATH, or nothing for a flag."""
    if param.metavar is not None:
        return str(param.metavar)
    if getattr(param, "is_flag", False):
        return ""
    descriptor = getattr(param, "type_descriptor", None)  # typer >= 0.29
    if descriptor is not None:
        word = _annotation_word(descriptor.annotation)
        if word is not None:
            return word
    click_type = getattr(param, "type", None)
    name = str(getattr(click_type, "name", "text")).lower()
    return _CLICK_WORDS.get(name, name.upper())


def _bounds(param: Any) -> tuple[Any, Any]:
    lo, hi = getattr(param, "min", None), getattr(param, "max", None)
    click_type = getattr(param, "type", None)
    return (lo if lo is not None else getattr(click_type, "min", None),
            hi if hi is not None else getattr(click_type, "max", None))


def _range_text(param: Any) -> str:
    lo, hi = _bounds(param)
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    if lo is not None:
        return f"at least {lo}"
    if hi is not None:
        return f"at most {hi}"
    return ""


def _default_text(param: Any) -> str:
    if param.show_default is False or getattr(param, "is_flag", False):
        return ""
    if isinstance(param.show_default, str):
        return param.show_default
    default = param.default
    if default is None or default == () or default == []:
        return ""
    if isinstance(default, (list, tuple)):
        return ", ".join(str(d) for d in default)
    return str(default)


def _argument_name(param: Any) -> str:
    name = str(param.metavar or param.name or "").upper().removesuffix("...")
    return f"{name}..." if param.nargs != 1 else name


class HelpCommand(TyperCommand):
    """A Typer command whose help lists plain type words and defaults, and prints help text verbatim."""

    def get_short_help_str(self, limit: int = 45) -> str:
        """The first sentence of the help, whole (the commands table wraps it)."""
        text = " ".join((self.short_help or self.help or "").split())
        return text.split(". ")[0].rstrip(".")

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = ["[OPTIONS]"]
        for param in self.get_params(ctx):
            if isinstance(param, typer.core.TyperArgument):
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            extra = []
            if isinstance(param, typer.core.TyperArgument):
                if param.required:
                    extra.append("required")
                arguments.append((_argument_name(param), self._help(param, extra)))
                continue
            names = ", ".join(sorted(param.opts, key=len))
            if param.secondary_opts:
                names += " / " + ", ".join(param.secondary_opts)
            word = type_word(param)
            if param.required:
                extra.append("required")
            if _range_text(param):
                extra.append(_range_text(param))
            if _default_text(param):
                extra.append(f"default: {_default_text(param)}")
            options.append((f"{names} {word}".rstrip(), self._help(param, extra)))
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    @staticmethod
    def _help(param: Any, extra: list[str]) -> str:
        text = " ".join((param.help or "").split())
        return f"{text} [{'; '.join(extra)}]".strip() if extra else text
