"""Entry point: ``maskwork`` opens the window, ``maskwork ops|run|batch`` is the command line."""

from __future__ import annotations

import os
import sys
from typing import Sequence

COMMANDS = ("ops", "run", "batch", "models")
#: What the window imports beyond the core: the ``app`` extra (a core install without it
#: runs the command line only, and leaves napari's environment free of a second Qt).
WINDOW_MODULES = ("PySide6", "pyqtgraph", "superqt")
EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the command line or the window; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command_line = bool(argv) and (argv[0] in COMMANDS or argv[0] in ("-h", "--help"))
    if not command_line and argv not in (["--serve-one-call"], ["--serve-calls"]):
        # The window runs operator after operator on large images: freed memory stays for
        # the next run (maskwork.core.heap), set before anything starts a thread (numpy's
        # BLAS, Qt). Not for the command line, whose batch workers run many threads each;
        # a child process gets its parent's choice through its environment.
        from maskwork.core.heap import keep_freed_memory

        keep_freed_memory()
    if argv == ["--serve-one-call"]:
        # A frozen bundle's child process of maskwork.operators.stoppable.call_stoppable.
        from maskwork.operators.stoppable import serve_one_call

        serve_one_call()
        return 0
    if argv == ["--serve-calls"]:
        # A frozen bundle's long-lived child of maskwork.operators.stoppable.call_warm.
        from maskwork.operators.stoppable import serve_calls

        serve_calls()
        return 0
    if command_line:
        from maskwork.cli import main as cli_main

        return cli_main(argv)
    if argv and argv[0] == "--version":
        from maskwork import __version__

        print(f"maskwork {__version__}")
        return 0
    options = [arg for arg in argv if arg.startswith("-")]
    if options:
        sys.stderr.write(f"maskwork: error: unknown option {options[0]} "
                         f"(commands: {', '.join(COMMANDS)}; or give image files)\n")
        return EXIT_BAD_INPUT
    from maskwork.operators.extras import missing_modules, needs_message

    missing = missing_modules(WINDOW_MODULES)
    if missing:
        sys.stderr.write(f"maskwork: {needs_message('The window', missing)} (the command line runs without it: maskwork --help)\n")
        return EXIT_BAD_INPUT
    if _no_display():
        # Qt would abort (SIGABRT) with advice to reinstall.
        sys.stderr.write("maskwork: error: no display to open the window on (DISPLAY and WAYLAND_DISPLAY are "
                         "unset); the command line needs none: maskwork --help\n")
        return EXIT_BAD_INPUT
    from maskwork.app.application import run_application

    return run_application(argv)


def _no_display() -> bool:
    """Whether the window has nowhere to show on Linux and the like: no X or Wayland
    display, and no Qt platform chosen (``offscreen``, ``vnc``, ``eglfs``, ...)."""
    if sys.platform in ("win32", "darwin") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


if __name__ == "__main__":
    sys.exit(main())
