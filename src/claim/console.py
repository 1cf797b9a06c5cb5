"""The ``claim`` console script: Ctrl-C while the command line loads is one line, as it is once a command runs.

Loading ``claim.cli`` imports torch, MONAI and every command (a few seconds), and an interrupt there would
otherwise print the import's traceback. This module imports nothing heavy, so it can catch it. It also installs
``claim.interrupts`` for the command's run, so a Ctrl-C Python would drop is raised again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from claim import interrupts

    interrupts.install()
    try:
        from claim.cli import main as run_command

        return run_command(argv)
    except KeyboardInterrupt:  # while the command line loads or is parsed, before a command catches it
        interrupts.handled()
        print("claim: interrupted", file=sys.stderr)
        return 130
    finally:
        interrupts.uninstall()
