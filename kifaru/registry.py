"""Components of one kind declared once, by name: models, model classes, output writers,
augmentations, training loggers. Each kind has one :class:`Registry`; looking up a name it does
not hold is a :class:`~kifaru.exceptions.ConfigError` that lists the known names, with a "did you
mean" hint for a misspelling (as timm's ``create_model``).

Light to import: the configs check names against registries.
"""

from __future__ import annotations

from typing import Generic, Iterator, Optional, TypeVar

from kifaru.exceptions import ConfigError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Names to components of one ``kind`` ("model", "output format"), in the order declared."""

    def __init__(self, kind: str, plural: Optional[str] = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Make ``item`` known as ``name``; a name registered twice is a ValueError (a
        programming error, not the user's)."""
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = item
        return item

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        """What is said of a name this registry does not hold."""
        from kifaru.config.base import did_you_mean

        return f"unknown {self.kind} '{name}'{did_you_mean(name, list(self._items))}; known {self.plural}: {', '.join(self.names())}"

    def get(self, name: str, default: Optional[T] = None) -> Optional[T]:
        return self._items.get(name, default)

    def names(self) -> list[str]:
        """The names, sorted (for messages and listings)."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, item) in the order declared."""
        return list(self._items.items())

    def values(self) -> list[T]:
        return list(self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    # Replacing and removing, without the twice-registered check: for tests (pytest's
    # ``monkeypatch.setitem`` restores what was there afterwards).
    def __setitem__(self, name: str, item: T) -> None:
        self._items[name] = item

    def __delitem__(self, name: str) -> None:
        del self._items[name]
