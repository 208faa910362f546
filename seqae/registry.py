"""Find components by name.

Every component seqae can build from a config (encoders, decoders, bottlenecks, models,
datasets, ...) is registered under a *kind* and a *name*. Components come from plugins: any
installed distribution that declares an entry point in the group ``seqae.plugins`` whose object
is a callable ``register(registry)``. seqae's own built-ins are registered through that same
group and no other way (see ``pyproject.toml``), so a third-party package is a first-class
citizen. A plugin whose optional dependencies are missing (:class:`seqae.extras.MissingExtraError`
at import) is left out and listed in ``Registry.unavailable``.

    >>> from seqae import registry
    >>> vae = registry.build("bottleneck", {"name": "gaussian", "in_dim": 32, "latent_dim": 8})

``build`` remembers the spec it was given on the built module (``module.seqae_spec``), which is
how :meth:`seqae.core.model.Autoencoder.save_pretrained` can write a ``config.json`` that
rebuilds the same model.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from seqae.extras import MissingExtraError

__all__ = [
    "ENTRY_POINT_GROUP",
    "Registry",
    "REGISTRY",
    "register",
    "get",
    "build",
    "names",
    "UnknownComponentError",
]

ENTRY_POINT_GROUP = "seqae.plugins"
SPEC_ATTR = "seqae_spec"


class UnknownComponentError(KeyError):
    """Raised when a name is not registered under a kind."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Registry:
    """A two-level map ``kind -> name -> factory`` filled by plugins on first use.

    Args:
        group: Entry-point group scanned for plugins.
        autoload: Scan entry points on first lookup. Turn off for an isolated registry in tests.
    """

    def __init__(self, *, group: str = ENTRY_POINT_GROUP, autoload: bool = True) -> None:
        self.group = group
        self._autoload = autoload
        self._loaded = False
        self._lock = threading.RLock()
        self._items: dict[str, dict[str, Callable[..., Any]]] = {}
        self._origin: dict[tuple[str, str], str] = {}
        self.plugins: list[str] = []
        #: plugins left out because their extra is not installed: name -> the reason
        self.unavailable: dict[str, str] = {}

    # -- registration -----------------------------------------------------------------------
    def register(
        self, kind: str, name: str, factory: Callable[..., Any] | None = None, *, origin: str = ""
    ) -> Any:
        """Register ``factory`` as ``kind/name``; usable as a decorator when ``factory`` is None.

        Registering a different object under a taken name is an error: two plugins must not
        silently shadow each other.
        """

        def _do(obj: Callable[..., Any]) -> Callable[..., Any]:
            with self._lock:
                table = self._items.setdefault(kind, {})
                if name in table and table[name] is not obj:
                    raise ValueError(
                        f"{kind} {name!r} is already registered by "
                        f"{self._origin.get((kind, name)) or 'another plugin'}"
                    )
                table[name] = obj
                self._origin[(kind, name)] = origin
            return obj

        return _do if factory is None else _do(factory)

    def load_plugins(self, eps: Iterable[EntryPoint] | None = None) -> None:
        """Import every plugin of the entry-point group and let it register its components."""
        with self._lock:
            if eps is None:
                eps = entry_points(group=self.group)
            for ep in eps:
                if ep.name in self.plugins or ep.name in self.unavailable:
                    continue
                try:
                    hook = ep.load()
                except MissingExtraError as exc:  # an optional plugin without its extra
                    self.unavailable[ep.name] = str(exc)
                    continue
                except Exception as exc:  # a broken plugin must say which one it is
                    raise ImportError(
                        f"seqae plugin {ep.name!r} ({ep.value}) failed to import: {exc}"
                    ) from exc
                self.plugins.append(ep.name)
                hook(_OriginRegistry(self, ep.name))
            self._loaded = True
            if "core" not in self.plugins and self.group == ENTRY_POINT_GROUP:
                raise ImportError(
                    "seqae's built-in components are not registered: seqae is not installed "
                    "(no 'seqae.plugins' entry points found); install it, e.g. "
                    "pip install -e '.[all]' in a source tree"
                )

    def _ensure_loaded(self) -> None:
        if self._autoload and not self._loaded:
            self.load_plugins()

    # -- lookup -----------------------------------------------------------------------------
    def kinds(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._items)

    def names(self, kind: str | None = None) -> list[str] | dict[str, list[str]]:
        """Registered names of one kind, or a ``{kind: names}`` dict of all of them."""
        self._ensure_loaded()
        if kind is None:
            return {k: sorted(v) for k, v in sorted(self._items.items())}
        return sorted(self._items.get(kind, {}))

    def get(self, kind: str, name: str) -> Callable[..., Any]:
        """The factory registered as ``kind/name``; a clear error listing the choices if none."""
        self._ensure_loaded()
        table = self._items.get(kind)
        if table is None:
            raise UnknownComponentError(
                f"unknown component kind {kind!r}; registered kinds: {', '.join(self.kinds()) or '(none)'}"
            )
        if name not in table:
            hint = difflib.get_close_matches(name, table, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UnknownComponentError(
                f"unknown {kind} {name!r}{did_you_mean}; registered {kind}s: {', '.join(sorted(table))}"
            )
        return table[name]

    def build(self, kind: str, spec: Mapping[str, Any] | str, **overrides: Any) -> Any:
        """Build ``kind`` from ``spec``: ``{"name": ..., **kwargs}`` (or just the name).

        The spec (with overrides applied) is stored on the result as ``seqae_spec`` when the
        result accepts attributes, so that the object can be rebuilt from JSON later.
        """
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ValueError(f"a {kind} spec must be a mapping with a 'name' key, got {spec!r}")
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        kwargs.update(overrides)
        factory = self.get(kind, spec["name"])
        try:
            obj = factory(**kwargs)
        except TypeError as exc:
            raise TypeError(f"cannot build {kind} {spec['name']!r} with {kwargs}: {exc}") from exc
        with contextlib.suppress(AttributeError, TypeError):
            setattr(obj, SPEC_ATTR, {"name": spec["name"], **copy.deepcopy(kwargs)})
        return obj


class _OriginRegistry:
    """The view of a registry handed to one plugin: registrations are tagged with its name."""

    def __init__(self, registry: Registry, origin: str) -> None:
        self._registry = registry
        self._origin = origin

    def register(self, kind: str, name: str, factory: Callable[..., Any] | None = None) -> Any:
        return self._registry.register(kind, name, factory, origin=self._origin)


REGISTRY = Registry()


def register(kind: str, name: str, factory: Callable[..., Any] | None = None) -> Any:
    """Register into the global registry (for code that is not an entry-point plugin)."""
    return REGISTRY.register(kind, name, factory, origin="runtime")


def get(kind: str, name: str) -> Callable[..., Any]:
    return REGISTRY.get(kind, name)


def build(kind: str, spec: Mapping[str, Any] | str, **overrides: Any) -> Any:
    return REGISTRY.build(kind, spec, **overrides)


def names(kind: str | None = None) -> list[str] | dict[str, list[str]]:
    return REGISTRY.names(kind)
