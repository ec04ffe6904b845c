"""Write docs/api.md, the API reference, from the docstrings of the public objects.

    python docs/make_api.py

The test suite checks that docs/api.md is what this script renders, so the reference
cannot drift from the code.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

MODULES = ["odenets", "odenets.solvers", "odenets.zoo", "odenets.analysis", "odenets.app"]
OUT = Path(__file__).with_name("api.md")


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def _doc(obj) -> str:
    return inspect.getdoc(obj) or "(undocumented)"


def _methods(cls) -> list[tuple[str, object]]:
    own = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
            continue
        own.append((name, member))
    return own


def _entry(qualname: str, obj) -> list[str]:
    if inspect.isclass(obj):
        lines = [f"### class `{qualname}{_signature(obj)}`", "", _doc(obj), ""]
        for name, member in _methods(obj):
            if isinstance(member, property):
                lines += [f"- **`{name}`** (property): {_doc(member).splitlines()[0]}"]
            else:
                lines += [f"- **`{name}{_signature(member)}`**: " + _doc(member).replace("\n", " ")]
        return lines + [""]
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        return [f"### `{qualname}{_signature(obj)}`", "", _doc(obj), ""]
    return [f"### `{qualname}`", "", f"`{obj!r}`", ""]


def render() -> str:
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/make_api.py`; do not edit by hand.", ""]
    for modname in MODULES:
        module = importlib.import_module(modname)
        lines += [f"## `{modname}`", "", _doc(module), ""]
        for name in sorted(getattr(module, "__all__", [])):
            lines += _entry(f"{modname}.{name}", getattr(module, name))
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    from odenets.files import atomic_write

    text = render()
    atomic_write(OUT, lambda f: f.write(text), "w")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
