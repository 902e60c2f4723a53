"""The one place where library errors become a message and an exit code.

A user-caused error prints ``pclup: error: <one line>`` on standard error and exits non-zero; it never
prints a traceback. Programming errors are not caught here: they should be seen and reported.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as a pclup error and return the Exit to raise."""
    typer.echo(f"pclup: error: {message}", err=True)
    return typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl+C would be, so that every clean-up written for Ctrl+C runs for it too."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command so that pclup errors, Ctrl+C, SIGTERM and out-of-memory end it with one line."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from pclup.errors import PclupError, is_out_of_memory

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return func(*args, **kwargs)
        except PclupError as e:
            raise fail(str(e), e.exit_code) from None
        except Terminated:
            raise fail("terminated", 128 + signal.SIGTERM) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except (MemoryError, RuntimeError) as e:
            if is_out_of_memory(e):
                raise fail("out of memory", 1) from None
            raise

    return wrapper


