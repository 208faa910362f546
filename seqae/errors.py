"""The errors a user can cause, and how every ``seqae`` command reports them.

A user's mistake (a bad flag value, a file that is not what it should be, a config key that does
not exist) is reported as one line, ``seqae: error: <what is wrong and what was expected>``, with
exit status 2: argparse's convention, kept by every command. Library code raises
:class:`UsageError` (or one of the exceptions :func:`user_errors` names) and
:func:`seqae.cli.main` does the printing; a traceback means a bug in seqae, never a mistake of
the user's.
"""

from __future__ import annotations

__all__ = ["UsageError", "EXIT_USAGE", "user_errors"]

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user; the message is the whole explanation (one line)."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Library exceptions that always describe a user's input rather than a bug (imported
    late: the modules that define them import torch)."""
    from seqae.config import ConfigError
    from seqae.core.saving import SavedModelError
    from seqae.files import OutputNotRegularFileError, OutputOverwritesInputError

    return (
        UsageError,
        ConfigError,
        SavedModelError,
        OutputOverwritesInputError,
        OutputNotRegularFileError,
    )
