"""Models loaded once and reused by every browser session.

The demo serves several sessions from one process; each model folder (and each converter
built from a model and a vocoder) is loaded the first time a session needs it and shared from
then on. Two sessions asking for the same folder at once wait for one load rather than loading
it twice; a load that fails is not remembered, so the next request tries again (after, say, the
run that writes the folder has finished).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["ModelCache"]

T = TypeVar("T")


class ModelCache:
    """Loaded objects by key, each loaded once, thread-safe.

    Attributes:
        loads: How many times each key was loaded (1 for every key once it is cached).
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads: Counter[Hashable] = Counter()

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The object cached under ``key``, loaded with ``load()`` the first time.

        Args:
            key: What identifies the object, e.g. ``("vc_model", "/abs/path/model")``.
            load: Makes the object; called at most once per key while its loads succeed.

        Raises:
            Whatever ``load`` raises (nothing is cached then).
        """
        with self._lock:
            if key in self._items:
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:  # another session loaded it while this one waited
                    return self._items[key]
            value = load()
            with self._lock:
                self._items[key] = value
                self.loads[key] += 1
        return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
