"""``--config FILE.toml``: a command's flags, written down as an experiment file.

A key is a flag's long name with underscores (``train_subset = 5000`` for
``--train-subset 5000``); a list is a TOML array (``models = ["resnet20", "resnet56"]``,
``milestones = [0.5, 0.75]``); a repeatable KEY=VALUE flag takes a table (``[opt]``,
``k_init = 0.0``, ``preact = false``, ``k_bounds = [-0.9, 0.9]``); a switch takes true or
false, or a table of its own settings, which turns it on (``[tensorboard]``, ``every = 20``
for ``--tensorboard --tensorboard-every 20``). The command line is parsed once; the file's settings are then read as the flags
they stand for (so they are checked as any flag is) and fill in what the command line
left unset: a flag given on the command line wins, a repeatable flag's values follow the
file's, and a flag given replaces the file's setting of any alternative to it (``--model``
the file's ``models``). Paths in the file (``out``, ``data_dir``) are read as flags are,
from the working directory. What a run resolved from them is recorded with its results
(``config.json``, ``ablation.json``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library (a dependency on Python 3.10)
    import tomli as tomllib

from ..errors import UsageError


class Parser(argparse.ArgumentParser):
    """A command's parser that keeps the flags it was given (what ``add_argument``
    returns), for a settings file to be read as those flags. Its flags leave a setting
    not given as None, so that a setting given is told from one left to the file."""

    def __init__(self, *args, **kwargs):
        self.flags: dict[str, argparse.Action] = {}
        self.repeatable: set[str] = set()
        self.alternatives: list[frozenset[str]] = []
        self.reading: Optional[Path] = None
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.option_strings and action.dest not in ("help", "config"):
            self.flags[action.dest] = action
            if kwargs.get("action") == "append":
                self.repeatable.add(action.dest)
        return action

    def error(self, message: str):
        if self.reading is not None:  # a setting of the file that argparse refused
            raise UsageError(f"{self.reading}: {message}")
        super().error(message)


def add_argument(p: Parser, alternatives: tuple[tuple[str, ...], ...] = ()) -> None:
    """Give command parser ``p`` the ``--config`` flag; ``alternatives``: groups of
    settings of which a flag given replaces the file's setting of any other."""
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file: each key a flag's long "
                   "name with underscores (seeds = 5, models = [\"resnet20\"]); flags given here override it")
    p.alternatives = [frozenset(group) for group in alternatives]
    p.set_defaults(command_parser=p)


def merged(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` (the command line, parsed) with the settings of ``args.config`` filled in
    where the command line gave none."""
    if not getattr(args, "config", None):
        return args
    parser: Parser = args.command_parser
    path = Path(args.config)
    settings = expanded(read(path), parser)
    parser.reading = path
    try:
        from_file = parser.parse_args(flags(path, settings, parser))
    finally:
        parser.reading = None
    given = {dest for dest in parser.flags if getattr(args, dest) is not None}
    values = vars(args).copy()
    for dest in settings:
        if dest in parser.repeatable:
            values[dest] = getattr(from_file, dest) + (getattr(args, dest) or [])
        elif not any(dest in group and group & given for group in parser.alternatives) and dest not in given:
            values[dest] = getattr(from_file, dest)
    return argparse.Namespace(**values)


def read(path: Path) -> dict[str, Any]:
    """The settings in TOML file ``path``; a UsageError naming it if it cannot be read."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise UsageError(f"cannot read the settings file {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} is not valid TOML: {e}") from None


def expanded(settings: dict[str, Any], parser: Parser) -> dict[str, Any]:
    """``settings`` with a switch's table turned into the switch and its own settings:
    ``[tensorboard] every = 20`` is ``tensorboard = true, tensorboard_every = 20``."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        action = parser.flags.get(key)
        if action is not None and action.nargs == 0 and isinstance(value, dict):
            out[key] = True
            out.update({f"{key}_{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def flags(path: Path, settings: dict[str, Any], parser: Parser) -> list[str]:
    """The command-line flags of ``parser`` that ``settings`` (read from ``path``, expanded) stand for."""
    out: list[str] = []
    for key, value in settings.items():
        action = parser.flags.get(key)
        if action is None:
            raise UsageError(f"{path}: unknown setting {key!r}; the settings are the long flags of `odenets "
                             f"{parser.prog.split()[-1]}` with underscores: {', '.join(sorted(parser.flags))}")
        out += _tokens(action, key in parser.repeatable, value, f"{path}: {key}")
    return out


def _tokens(action: argparse.Action, repeatable: bool, value, where: str) -> list[str]:
    flag = next(s for s in action.option_strings if s.startswith("--"))  # --amp, not --no-amp
    if action.nargs == 0:  # a switch: --quiet, --amp/--no-amp
        if not isinstance(value, bool):
            raise UsageError(f"{where} is a switch: give true or false, not {value!r}")
        if value:
            return [flag]
        negative = f"--no-{flag[2:]}"
        return [negative] if negative in action.option_strings else []
    if repeatable:  # KEY=VALUE, each value as --opt reads it
        if not isinstance(value, dict):
            raise UsageError(f"{where} takes a table of KEY = VALUE, e.g. {{ {action.dest}_key = 1 }}, not {value!r}")
        return [t for k, v in value.items() for t in (flag, f"{k}={_option(v, f'{where}.{k}')}")]
    if isinstance(value, list):
        items = [_scalar(v, action, where) for v in value]
        return [flag, *items] if action.nargs in ("+", "*") else [f"{flag}={','.join(items)}"]  # --models a,b
    return [f"{flag}={_scalar(value, action, where)}"]


def _option(value, where: str) -> str:
    """A table's value as KEY=VALUE's text: true/false, a number, a list of them, or text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return f"[{', '.join(_option(v, where) for v in value)}]"
    return _scalar(value, None, where)


def _scalar(value, action: Optional[argparse.Action], where: str) -> str:
    """``value`` as the flag's text, checked here so that the message names the file."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError(f"{where}: {value!r} is not a string or a number")
    if action is not None and action.type in (int, float):
        if isinstance(value, str) or (action.type is int and not isinstance(value, int)):
            raise UsageError(f"{where} takes {'an integer' if action.type is int else 'a number'}, not {value!r}")
    return str(value)
