"""The ``odenets`` command: ``train``, ``eval``, ``ablate``, ``analyze``.

Each subcommand lives in its own module, which exposes ``register(subparsers)``
(adding its parser, with ``set_defaults(func=run)``). An error the user can act on is
printed as one message with its exit status (2 for bad input), not a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from ..errors import AppError
from ..run.distributed import teardown
from ..settings import settings_file
from . import ablate, analyze, evaluate, train

COMMANDS = (train, evaluate, ablate, analyze)


def parser() -> argparse.ArgumentParser:
    from odenets import __version__

    p = argparse.ArgumentParser(prog="odenets", description="Residual networks as numerical ODE solvers: train "
                                "them, compare solvers, read trained networks as schemes.")
    p.add_argument("--version", action="version", version=f"odenets {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=settings_file.Parser)
    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        args = settings_file.merged(args)
        args.argv = argv
        return args.func(args) or 0
    except AppError as e:
        print(f"odenets {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"odenets {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`odenets ... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        teardown()


if __name__ == "__main__":
    sys.exit(main())
