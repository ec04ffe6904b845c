"""``--config FILE.toml``: a command's flags, written down as an experiment file.

A key is a flag's long name with underscores (``train_subset = 5000`` for
``--train-subset 5000``); a list is a TOML array (``models = ["resnet20", "resnet56"]``,
``milestones = [0.5, 0.75]``); a repeatable KEY=VALUE flag takes a table
(``[opt]``, ``k_init = 0.0``); a switch takes true or false, or a table of its own
settings, which turns it on (``[tensorboard]``, ``every = 20`` for ``--tensorboard
--tensorboard-every 20``). The file's settings are
turned into the flags they stand for and placed before the command line's own, so
argparse checks them as it checks any flag and a flag given on the command line wins.
Paths in the file (``out``, ``data_dir``) are read as flags are, from the working
directory. What a run resolved from them is recorded with its results (``config.json``,
``ablation.json``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library (a dependency on Python 3.10)
    import tomli as tomllib

from ..errors import UsageError


def add_argument(p: argparse.ArgumentParser) -> None:
    """Give command parser ``p`` the ``--config`` flag."""
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file: each key a flag's long "
                   "name with underscores (seeds = 5, models = [\"resnet20\"]); flags given here override it")
    p.set_defaults(command_parser=p)


def expand(argv: list[str], args: argparse.Namespace) -> list[str]:
    """``argv`` with the flags of ``args.config`` placed right after the command's name."""
    at = argv.index(args.command) + 1
    return argv[:at] + flags(Path(args.config), args.command_parser) + argv[at:]


def flags(path: Path, parser: argparse.ArgumentParser) -> list[str]:
    """The command-line flags of ``parser`` that the settings in ``path`` stand for."""
    try:
        settings = tomllib.loads(path.read_text())
    except OSError as e:
        raise UsageError(f"cannot read the settings file {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} is not valid TOML: {e}") from None
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    out: list[str] = []
    items = list(settings.items())
    while items:
        key, value = items.pop(0)
        action = actions.get(key)
        if action is None:
            raise UsageError(f"{path}: unknown setting {key!r}; the settings are the long flags of `odenets "
                             f"{parser.prog.split()[-1]}` with underscores: {', '.join(sorted(actions))}")
        if action.nargs == 0 and isinstance(value, dict):  # [tensorboard] every = 20: the switch, and its settings
            items[:0] = [(key, True)] + [(f"{key}_{k}", v) for k, v in value.items()]
            continue
        out += _tokens(action, value, f"{path}: {key}")
    return out


def _tokens(action: argparse.Action, value, where: str) -> list[str]:
    flag = next(s for s in action.option_strings if s.startswith("--"))  # --amp, not --no-amp
    if action.nargs == 0:  # a switch: --quiet, --amp/--no-amp
        if not isinstance(value, bool):
            raise UsageError(f"{where} is a switch: give true or false, not {value!r}")
        if value:
            return [flag]
        negative = f"--no-{flag[2:]}"
        return [negative] if negative in action.option_strings else []
    if isinstance(action, argparse._AppendAction):  # repeatable KEY=VALUE
        if not isinstance(value, dict):
            raise UsageError(f"{where} takes a table of KEY = VALUE, e.g. {{ {action.dest}_key = 1 }}, not {value!r}")
        return [t for k, v in value.items() for t in (flag, f"{k}={_scalar(v, None, where)}")]
    if isinstance(value, list):
        items = [_scalar(v, action, where) for v in value]
        return [flag, *items] if action.nargs in ("+", "*") else [f"{flag}={','.join(items)}"]  # --models a,b
    return [f"{flag}={_scalar(value, action, where)}"]


def _scalar(value, action: argparse.Action | None, where: str) -> str:
    """``value`` as the flag's text, checked here so that the message names the file."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError(f"{where}: {value!r} is not a string or a number")
    if action is not None and action.type in (int, float):
        if isinstance(value, str) or (action.type is int and not isinstance(value, int)):
            raise UsageError(f"{where} takes {'an integer' if action.type is int else 'a number'}, not {value!r}")
    return str(value)
