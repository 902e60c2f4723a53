"""The ``pclup`` command. A thin layer: each command parses flags and calls the library.

Nothing here imports torch at module level, so ``pclup --help`` and ``pclup --version`` answer at once;
command bodies import what they need.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .._version import __version__
from ._help import HelpCommand
from .bench import bench
from .compare import compare
from .export import export
from .info import convert, info
from .models import models
from .train import finetune_command, train_command
from .upscale import upscale

app = typer.Typer(
    name="pclup",
    help="Upscale images with super-resolution networks, benchmark them, and train them with PCL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # help text is printed as written (brackets and all)
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pclup {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Upscale images with super-resolution networks, benchmark them, and train them with PCL."""


app.command("upscale", cls=HelpCommand)(upscale)
app.command("bench", cls=HelpCommand)(bench)
app.command("compare", cls=HelpCommand)(compare)
app.command("train", cls=HelpCommand)(train_command)
app.command("finetune", cls=HelpCommand)(finetune_command)
app.command("models", cls=HelpCommand)(models)
app.command("info", cls=HelpCommand)(info)
app.command("convert", cls=HelpCommand)(convert)
app.command("export", cls=HelpCommand)(export)


#: Commands whose process ends without the interpreter's teardown once their work is done and written:
#: with torch loaded, the teardown alone takes about 0.3 s, spent after the user's file is complete.
QUICK_EXIT_COMMANDS = ("upscale",)


def main() -> None:
    """Console-script entry point."""
    import logging
    import sys

    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # its retry chatter is not for our users
    try:
        app()
    except SystemExit as e:
        if len(sys.argv) > 1 and sys.argv[1] in QUICK_EXIT_COMMANDS:
            quick_exit(e.code)
        raise


def quick_exit(code: object) -> None:
    """End the process now with ``code`` (as ``SystemExit`` would), skipping the interpreter's teardown:
    only when torch is loaded (else there is nothing to gain) and no other thread is running (the
    outputs are written and closed by then; a running thread could still be writing). Returns, doing
    nothing, otherwise."""
    import logging
    import os
    import sys
    import threading

    if "torch" not in sys.modules or threading.active_count() > 1:
        return
    if isinstance(code, str):  # SystemExit("message"): printed, exit status 1
        sys.stderr.write(code + "\n")
        status = 1
    else:
        status = int(code or 0) if isinstance(code, (int, bool)) or code is None else 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    logging.shutdown()
    os._exit(status)
