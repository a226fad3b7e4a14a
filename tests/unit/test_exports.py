"""The public surface: __all__ matches the namespace, names are unique and sorted."""

from __future__ import annotations

import types

import livesync


def test_all_matches_the_public_namespace() -> None:
    """Every public name in livesync is in __all__, and every __all__ name exists."""
    public = {
        name for name, value in vars(livesync).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(livesync.__all__)


def test_all_is_unique_and_sorted() -> None:
    """__all__ lists each name once, sorted case-insensitively."""
    assert len(livesync.__all__) == len(set(livesync.__all__))
    assert livesync.__all__ == sorted(livesync.__all__, key=str.lower)
