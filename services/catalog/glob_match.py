"""Glob matching for SQLite, in time linear in the text for any pattern.

PostgreSQL matches globs with its own regex engine (glob_regex). SQLite has none, and Python's
re backtracks: "*a*a*a*a*a*a*a*a*b" against a long name of a's takes combinatorial time, so one
filter could hold the catalog's database thread for hours. A pattern with at most one
unbounded wildcard still goes to re (it cannot blow up: the one wildcard backtracks at most
once over the text); any other runs on a small NFA simulation over the glob's tokens, whose
cost is the text's length times the pattern's, whatever the input.

Semantics are glob_regex's exactly (tests/hostile compares the two): "*" any run of characters
but "/", "?" one such character, "**" anything, "/**/" also "/", a leading "**/" also nothing,
a trailing "/**" also nothing, everything else literal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from services.catalog.filters import glob_regex

_LIT, _ONE, _STAR, _ANY, _SPLIT = range(5)  # _SPLIT: an optional group (skip to its argument)


def _program(pattern: str) -> list[tuple[int, Any]]:
    program: list[tuple[int, Any]] = []

    def optional(*steps: tuple[int, Any]) -> None:
        start = len(program)
        program.append((_SPLIT, start + 1 + len(steps)))
        program.extend(steps)

    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("/**/", i):  # "(/.*)?/": "/" or "/.../"
            program.append((_LIT, "/"))
            optional((_ANY, None), (_LIT, "/"))
            i += 4
        elif pattern.startswith("/**", i) and i + 3 == n:  # "(/.*)?"
            optional((_LIT, "/"), (_ANY, None))
            i += 3
        elif pattern.startswith("**/", i) and i == 0:  # "(.*/)?"
            optional((_ANY, None), (_LIT, "/"))
            i += 3
        elif pattern.startswith("**", i):
            program.append((_ANY, None))
            i += 2
        elif pattern[i] == "*":
            program.append((_STAR, None))
            i += 1
        elif pattern[i] == "?":
            program.append((_ONE, None))
            i += 1
        else:
            program.append((_LIT, pattern[i]))
            i += 1
    return program


class _Nfa:
    def __init__(self, program: list[tuple[int, Any]]) -> None:
        self._program, self._end = program, len(program)
        # Every state with the states reachable from it without reading a character.
        self._closures = [self._closure(state) for state in range(self._end + 1)]

    def _closure(self, state: int) -> frozenset[int]:
        found, todo = {state}, [state]
        while todo:
            current = todo.pop()
            if current == self._end:
                continue
            kind, arg = self._program[current]
            following = {_STAR: (current + 1,), _ANY: (current + 1,),
                         _SPLIT: (current + 1, arg)}.get(kind, ())
            for target in following:
                if target not in found:
                    found.add(target)
                    todo.append(target)
        return frozenset(found)

    def matches(self, text: str) -> bool:
        program, end, closures = self._program, self._end, self._closures
        states = closures[0]
        for char in text:
            following: set[int] = set()
            for state in states:
                if state == end:
                    continue
                kind, arg = program[state]
                if kind == _LIT:
                    if char == arg:
                        following |= closures[state + 1]
                elif kind == _ANY or (kind == _STAR and char != "/"):
                    following |= closures[state]
                elif kind == _ONE and char != "/":
                    following |= closures[state + 1]
            if not following:
                return False
            states = following  # type: ignore[assignment]
        return end in states


@lru_cache(maxsize=256)
def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A function telling whether a whole text matches the glob."""
    program = _program(pattern)
    if sum(kind in (_STAR, _ANY) for kind, _ in program) <= 1:
        regex = re.compile(glob_regex(pattern), re.DOTALL)
        return lambda text: regex.search(text) is not None
    return _Nfa(program).matches


def sqlite_glob(value: Any, pattern: str | None) -> bool | None:
    """SQLite's corral_glob(value, pattern) (registered on every connection by db.py), NULL
    for NULL or non-text values like PostgreSQL's ~."""
    if pattern is None or not isinstance(value, str):
        return None
    return glob_matcher(pattern)(value)
