"""The ``claim`` console script: Ctrl-C while the command line loads is one line, as it is once a command runs.

Loading ``claim.cli`` imports torch, MONAI and every command (a few seconds), and an interrupt there would
otherwise print the import's traceback. This module imports nothing heavy, so it can catch it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from claim import interrupts

    interrupts.install()
    try:
        try:
            from claim.cli import main as run_command
        except KeyboardInterrupt:
            interrupts.handled()
            print("claim: interrupted", file=sys.stderr)
            return 130
        return run_command(argv)
    finally:
        interrupts.handled()
