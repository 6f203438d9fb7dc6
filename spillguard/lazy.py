"""Loaded on first use: names a package re-exports (PEP 562), and regular expressions.

Every `spillguard` command starts by registering every pillar's commands, which loads each pillar's package;
a package that imported its implementation up front would make every command pay for every pillar.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `homes` maps each exported name to the submodule defining it."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home}"), name)

    return __getattr__


class LazyPattern:
    """`re.compile(pattern, flags)`, made on first use: a module of big patterns (free-text addresses and names)
    costs nothing to a scan that never reads prose. Used like the compiled pattern (`.search`, `.finditer`, ...)."""

    __slots__ = ("_compiled", "flags", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern, self.flags = pattern, flags
        self._compiled: re.Pattern[str] | None = None

    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern, self.flags)
        return self._compiled

    def __getattr__(self, name: str) -> Any:
        return getattr(self.compiled(), name)
