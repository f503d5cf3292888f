"""stub"""

from typing import Any
import argparse


def register(commands: Any) -> None:
    commands.add_parser("eval-voc").set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return 0
