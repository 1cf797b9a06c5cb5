"""`claim` command line: one root parser, one module per subcommand (each parses and calls the library)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from claim import __version__, interrupts
from claim.cli import (
    aha,
    augment,
    demo,
    evaluate,
    experiment,
    generate,
    info,
    masks,
    phantom,
    realism,
    segment,
    split,
    train_generator,
    train_joint,
    train_segmenter,
)
from claim.errors import ClaimError

__all__ = ["main", "build_parser"]

_COMMANDS = (
    augment,
    info,
    phantom,
    aha,
    masks,
    demo,
    train_generator,
    generate,
    train_joint,
    split,
    experiment,
    train_segmenter,
    segment,
    evaluate,
    realism,
)


class _OneLineParser(argparse.ArgumentParser):
    """Flag errors as one line naming the flag and the problem (``--help`` still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="claim",
        description="Clinically guided myocardial scar synthesis for LGE cardiac MRI.",
    )
    parser.add_argument("--version", action="version", version=f"claim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(args.run(args) or 0)
    except ClaimError as exc:
        print(f"claim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Permission, not-a-directory, read-only or full disk: name the path, not the stack.
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        print(f"claim {args.command}: error: {where + ': ' if where else ''}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        interrupts.handled()
        print(f"claim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
