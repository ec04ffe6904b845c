"""Whether a value fits a type hint, and the hint in words, for checking options early.

Covers the hints that options and settings use: bool, int, float (any real number but
a bool), str, list, dict, None, Optional/Union, and Sequence[X] / list[X] (a list or
tuple of X). A bool is neither an int nor a float here: ``preact=1`` is a mistake.
"""
from __future__ import annotations

import collections.abc
import numbers
import types
import typing
from typing import Any

_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "None",
          dict: "a dict", list: "a list", tuple: "a tuple"}


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of type ``hint`` (an unknown hint accepts anything)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)) or (origin is not collections.abc.Sequence
                                                    and not isinstance(value, origin)):
            return False
        return not args or all(fits(v, args[0]) for v in value)
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is None or hint is type(None):
        return value is None
    if isinstance(origin or hint, type):
        return isinstance(value, origin or hint)
    return True


def describe(hint: Any) -> str:
    """``Optional[bool]`` -> 'true or false, or None'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return ", or ".join(describe(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence):
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    if hint is None:
        return "None"
    return _WORDS.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(words: str) -> str:
    return {"a number": "numbers", "an integer": "integers", "a string": "strings"}.get(words, words)
