"""Entry point: ``maskwork`` opens the window, ``maskwork ops|run|batch`` is the command line."""

from __future__ import annotations

import sys
from typing import Sequence

COMMANDS = ("ops", "run", "batch")


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the command line or the window; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (argv[0] in COMMANDS or argv[0] in ("-h", "--help")):
        from maskwork.cli import main as cli_main

        return cli_main(argv)
    if argv and argv[0] == "--version":
        from maskwork import __version__

        print(f"maskwork {__version__}")
        return 0
    from maskwork.app.application import run_application

    return run_application(argv)


if __name__ == "__main__":
    sys.exit(main())
