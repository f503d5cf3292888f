"""The `stoker` command: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import sys

from stoker.cli import bench, demo, eval_voc, show, train
from stoker.cli._common import CommandError

__all__ = ["build_parser", "main"]

_USAGE_ERROR_EXIT = (
    2  # argparse's code for bad usage; bad data and checkpoints are the user's to fix too
)


def build_parser() -> argparse.ArgumentParser:
    """The ``stoker`` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="stoker", description="stoker: data loading that keeps training jobs fed."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (demo, train, eval_voc, show, bench):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``stoker ARGS``; a problem the user can fix prints one paragraph and returns 2."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.run(args))
    except CommandError as error:
        print(f"stoker {args.command}: error: {error}", file=sys.stderr)
        return _USAGE_ERROR_EXIT
