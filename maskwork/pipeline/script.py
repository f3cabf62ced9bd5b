"""The Python script that comes with an exported recipe: a few lines that replay the saved file.

The script does not spell the steps out as operator calls. It loads the recipe file and
hands it to :func:`maskwork.pipeline.batch.replay_to_folder`, the code ``maskwork batch``
runs on each of its images, so the script, the batch and the window's recipe cannot drift
apart (a script generated from string templates did, each time replay learnt a new input
kind). To change what it does, edit the recipe, not the script.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import maskwork
from maskwork.core import io
from maskwork.operators.context import InputError
from maskwork.pipeline.batch import replay_to_folder
from maskwork.pipeline.inputs import RecipeError
from maskwork.pipeline.recipe import Recipe, load

_SCRIPT = '''"""Replay the maskwork recipe {name} ({count} step(s)) on one image; written by maskwork {version}.

    python {{this script}} IMAGE OUTDIR [--recipe RECIPE]

Writes OUTDIR/<image stem>_<layer>.png (or .tif, .json), each with a sidecar, as
`maskwork batch {name} IMAGE -o OUTDIR` does: both run maskwork's own replay.
To change the steps, edit the recipe file, not this script.
"""

from maskwork.pipeline.script import replay_main

if __name__ == "__main__":
    raise SystemExit(replay_main({path!r}))
'''


def to_python(recipe: Recipe) -> str:
    """A Python script that replays the saved ``recipe`` on one image.

    Parameters
    ----------
    recipe : Recipe
        A recipe saved with :meth:`Recipe.save` (or read with :func:`load`): the script
        replays that file, so changes made to ``recipe`` since are not in it.

    Raises
    ------
    RecipeError
        When the recipe has not been saved to a file.
    """
    if recipe.path is None:
        raise RecipeError("the recipe is not saved yet: save it first (Recipe.save), the script replays the file")
    return _SCRIPT.format(name=recipe.path.name, count=len(recipe.steps), version=maskwork.__version__, path=str(recipe.path))


def replay_main(recipe_path: str | os.PathLike, argv: list[str] | None = None) -> int:
    """The command line of a generated script: replay a recipe on IMAGE into OUTDIR.

    Parameters
    ----------
    recipe_path : str or path-like
        The recipe the script was written for; ``--recipe`` replaces it.
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every output was written; 2 after a one-line message on stderr when the
        recipe or the image cannot be read or a step rejects its inputs.
    """
    parser = argparse.ArgumentParser(description="Replay a maskwork recipe on one image.")
    parser.add_argument("image", type=Path, help="image to process")
    parser.add_argument("outdir", type=Path, help="folder for the outputs")
    parser.add_argument("--recipe", type=Path, default=Path(recipe_path), help="recipe file (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        recipe = load(args.recipe)
        outdir = args.outdir.resolve()
        # Seed paths in each sidecar are relative to the folder the sidecar lies in.
        written, _ = replay_to_folder(recipe, args.image, outdir, recipe.to_json(outdir))
    except (InputError, io.ImageReadError) as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
