"""A user's mistake as one line in the page, never a traceback and never a dead app.

Every event handler of the demo is wrapped with :func:`shown_in_page`: the errors that describe
the user's input (:class:`DemoInputError`, which the tabs raise, a file that is not audio, a
model folder that cannot be loaded, ...) become a ``gr.Error`` whose message is their first line
(HTML-escaped: gradio renders it as HTML, and it may quote a file name); anything else is a bug, logged with its
traceback on the server's standard error and shown in the page as one line that says so. The
server keeps running either way.
"""

from __future__ import annotations

import functools
import html
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import gradio as gr

from seqae.errors import user_errors

__all__ = ["DemoInputError", "first_line", "input_error_types", "shown_in_page"]

P = ParamSpec("P")
R = TypeVar("R")


class DemoInputError(ValueError):
    """Input the demo cannot use; the message is the whole explanation (one line)."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type's name when empty)."""
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def input_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that describe a user's input: seqae's user errors plus ``ValueError`` (the
    base of every seqae input error: audio files, feature settings, saved models, ...) and
    ``OSError`` (a folder that went missing while the app ran)."""
    return (*user_errors(), ValueError, OSError)


def shown_in_page(handler: Callable[P, R]) -> Callable[P, R]:
    """Wrap an event handler so that every error reaches the page as one line.

    An input error becomes ``gr.Error(first line)``; any other exception is printed with its traceback to standard error and becomes a one-line
    ``gr.Error`` naming its type.
    """

    @functools.wraps(handler)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        except input_error_types() as exc:
            raise gr.Error(html.escape(first_line(exc)), print_exception=False) from None
        except Exception as exc:  # a bug: the log gets the traceback, the page one line
            traceback.print_exc(file=sys.stderr)
            raise gr.Error(
                html.escape(
                    f"internal error ({type(exc).__name__}: {first_line(exc)}); the server log "
                    "has the details"
                ),
                print_exception=False,
            ) from None

    return wrapped
