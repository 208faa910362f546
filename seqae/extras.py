"""Optional dependencies, one extra per plugin, and the message a missing one gives.

The core (``pip install seqae``) needs torch and a few small packages; each plugin's heavier
dependencies come with its extra: ``seqae[audio]``, ``seqae[text]``, ``seqae[tree]``,
``seqae[demo]``, or all of them with ``seqae[all]``. A plugin package calls
:func:`require_extra` first thing, so importing it without its extra says which to install
instead of failing deep inside an import; the registry then leaves that plugin out and
``seqae list`` says why.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "MissingExtraError", "missing_modules", "require_extra"]

#: extra -> the modules it provides (import names). Kept in step with pyproject.toml.
EXTRAS: dict[str, tuple[str, ...]] = {
    "audio": ("torchaudio", "soundfile", "resemblyzer", "pocketsphinx"),
    "text": ("transformers", "tokenizers", "gymnasium", "stable_baselines3", "rouge_score"),
    "tree": (),
    "demo": ("gradio",),
}


class MissingExtraError(ImportError):
    """A plugin was imported without its extra's dependencies installed."""

    def __init__(self, message: str, *, extra: str, missing: tuple[str, ...]) -> None:
        super().__init__(message)
        self.extra = extra
        self.missing = missing


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken parent
        return False


def missing_modules(extra: str) -> tuple[str, ...]:
    """The modules of ``extra`` that cannot be imported here."""
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}; extras: {', '.join(EXTRAS)}")
    return tuple(name for name in EXTRAS[extra] if not _importable(name))


def require_extra(extra: str, *, feature: str) -> None:
    """Raise :class:`MissingExtraError` naming the extra to install when ``extra``'s modules
    are not all importable.

    Args:
        extra: The extra's name (a key of :data:`EXTRAS`).
        feature: What needs it, for the message ("the audio plugin").
    """
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(
            f"{feature} needs seqae's '{extra}' extra ({', '.join(missing)} not installed): "
            f"pip install 'seqae[{extra}]'",
            extra=extra,
            missing=missing,
        )
