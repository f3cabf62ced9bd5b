"""``maskwork models list | download NAME | path NAME | remove NAME | import NAME FILE``.

The command line of the model manager (:mod:`maskwork.core.models`); ``maskwork.cli``
adds its parser and calls :func:`run_models`. A download draws a text progress bar on
stderr, redrawn in place; Ctrl-C stops it and keeps what arrived, so the next
``download`` resumes.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from maskwork.core import models

#: Characters of the progress bar between its brackets.
BAR_WIDTH = 30
#: Seconds between two redraws of the bar (the last state is always drawn).
REDRAW_INTERVAL_S = 0.2


def add_models_parser(commands) -> None:
    """Add ``models`` and its subcommands to the top-level parser's ``commands``."""
    parser = commands.add_parser(
        "models",
        help="list, download, locate and remove pretrained models (Segment Anything, LaMa, ...)",
        description="Pretrained models are kept in the folder $MASKWORK_MODELS, else the user cache "
        "folder (maskwork models list shows it). Operators take a model's name wherever they take a model file.",
    )
    actions = parser.add_subparsers(dest="models_command", required=True, parser_class=type(parser))
    actions.add_parser("list", help="every known model: size, licence, whether it is downloaded")
    for action, text in (("download", "download a model (resumes an interrupted download)"),
                         ("path", "print the file of a downloaded model"),
                         ("remove", "delete a downloaded model from the cache")):
        actions.add_parser(action, help=text).add_argument("name", help="model name (see maskwork models list)")
    imported = actions.add_parser("import", help="copy a model file you have into the cache (hash-checked), for machines without internet")
    imported.add_argument("name", help="model name (see maskwork models list)")
    imported.add_argument("file", help="the model file")


def run_models(args: argparse.Namespace) -> int:
    """Run ``maskwork models ...``; returns the exit code.

    Raises LookupError for an unknown or missing model, OSError
    (:class:`~maskwork.core.models.DownloadError`) when the file cannot be fetched and
    ValueError (:class:`~maskwork.core.models.HashMismatch`) for a wrong file: the
    command line reports each in one line.
    """
    if args.models_command == "list":
        _list(sys.stdout)
    elif args.models_command in ("download", "import"):
        bar = TextProgressBar(args.name, sys.stderr)
        try:
            if args.models_command == "download":
                path = models.download_model(args.name, progress=bar)
            else:
                path = models.import_model_file(args.name, args.file, progress=bar)
        finally:
            bar.end_line()
        print(path)
    elif args.models_command == "path":
        entry = models.model_entry(args.name)  # a catalogue name only: resolve_model also takes paths
        print(models.resolve_model(entry.name))
    else:
        entry = models.model_entry(args.name)
        if models.remove_model(entry.name):
            print(f"removed {entry.name} ({models.installed_path(entry)})")
        else:
            print(f"{entry.name} was not downloaded")
    return 0


def _list(out: TextIO) -> None:
    """One row a model: name, size, licence, state, task; then the cache folder."""
    rows = [(entry.name, models.human_bytes(entry.size_bytes), entry.licence, models.state_text(entry), entry.task)
            for entry in models.catalogue()]
    widths = [max(len(row[i]) for row in rows + [("name", "size", "licence", "state", "")]) for i in range(4)]
    header = ("name", "size", "licence", "state", "task")
    for row in [header, *rows]:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + f"  {row[4]}\n")
    out.write(f"\nmodels folder: {models.models_folder()} (set MASKWORK_MODELS to move it)\n")


class TextProgressBar:
    """Draws a download's :class:`~maskwork.core.models.Progress` as one line, redrawn in place.

    ``sam_vit_b [###########-------------------]  37%  138.8 MB / 375.0 MB  12.4 MB/s``
    """

    def __init__(self, name: str, out: TextIO) -> None:
        self.name = name
        self.out = out
        self._drawn_at = 0.0
        self._stage = ""
        self._line_open = False
        self._width = 0

    def __call__(self, progress: models.Progress) -> None:
        now = time.monotonic()
        finished = progress.total_bytes is not None and progress.done_bytes >= progress.total_bytes
        if progress.stage == self._stage and not finished and now - self._drawn_at < REDRAW_INTERVAL_S:
            return
        if progress.stage != self._stage:
            self.end_line()
        self._drawn_at, self._stage = now, progress.stage
        fraction = progress.fraction
        filled = round(BAR_WIDTH * fraction) if fraction is not None else 0
        percent = f"{fraction:4.0%}" if fraction is not None else "   ?"
        rate = f"  {models.human_bytes(round(progress.bytes_per_second))}/s" if progress.stage == "downloading" else ""
        line = (
            f"{self.name} {progress.stage:<11} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {percent}  "
            f"{models.human_bytes(progress.done_bytes)} / {models.human_bytes(progress.total_bytes)}{rate}"
        )
        # Spaces wipe what a longer previous line left (the rate's width varies).
        self.out.write(f"\r{line.ljust(self._width)}")
        self._width = len(line)
        self._line_open = True
        if progress.stage == "verifying" and finished:
            self.end_line()
        self.out.flush()

    def end_line(self) -> None:
        """Finish the bar's line (before a message, or at the end)."""
        if self._line_open:
            self.out.write("\n")
            self.out.flush()
        self._line_open = False
        self._width = 0
