"""Where downloaded models live, and how a name or a path becomes a model file.

The cache is the platform's user cache folder (``platformdirs.user_cache_dir("maskwork")``
plus ``models``: ``~/.cache/maskwork/models`` on Linux, ``~/Library/Caches/maskwork/models``
on macOS, ``%LOCALAPPDATA%\\maskwork\\Cache\\models`` on Windows), or the folder named by
the environment variable ``MASKWORK_MODELS``. A model is installed when its catalogue file
name lies in that folder; files reach it only by an atomic rename after their hash was
checked (see :mod:`maskwork.core.models.download`), so a file there is always complete.
"""

from __future__ import annotations

import os
from pathlib import Path

from maskwork.core.models.catalogue import ModelEntry, ModelNotInstalled, UnknownModel, catalogue, model_entry

#: Environment variable that moves the model cache (a shared or offline machine's folder).
MODELS_FOLDER_VARIABLE = "MASKWORK_MODELS"
#: Folder in the cache where downloads and imports are assembled before their hash check.
PARTIAL_FOLDER = ".partial"


def models_folder() -> Path:
    """The folder models are kept in: ``$MASKWORK_MODELS``, else the user cache folder."""
    chosen = os.environ.get(MODELS_FOLDER_VARIABLE, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("maskwork", appauthor=False)) / "models"


def installed_path(entry: ModelEntry) -> Path:
    """Where ``entry``'s file lies in the cache once installed (whether or not it is)."""
    return models_folder() / entry.file_name


def partial_path(entry: ModelEntry) -> Path:
    """Where ``entry``'s download is kept until its hash is checked (and while interrupted)."""
    return models_folder() / PARTIAL_FOLDER / f"{entry.file_name}.part"


def partial_bytes(entry: ModelEntry) -> int:
    """Bytes of ``entry`` already downloaded by an interrupted attempt (0 when none)."""
    try:
        return partial_path(entry).stat().st_size
    except FileNotFoundError:
        return 0


def is_installed(name: str) -> bool:
    """Whether the catalogue model ``name`` is in the cache."""
    return installed_path(model_entry(name)).is_file()


def state_text(entry: ModelEntry) -> str:
    """``installed``, ``42% (resumable)`` after an interrupted download, or ``not downloaded``."""
    if installed_path(entry).is_file():
        return "installed"
    kept = partial_bytes(entry)
    if kept and entry.size_bytes:
        return f"{kept / entry.size_bytes:.0%} (resumable)"
    return "partial (resumable)" if kept else "not downloaded"


def how_to_get(name: str) -> str:
    """The one line that tells a person how to download model ``name``."""
    return f"model {name!r} is not downloaded: Deep learning > Models... or `maskwork models download {name}`"


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """The model file for a catalogue name or a path, as operators take it.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A path to a model file that exists, or the name of a catalogue model
        (``maskwork models list``).

    Returns
    -------
    pathlib.Path
        The path as given when it exists, else the cached file of the catalogue model.

    Raises
    ------
    ModelNotInstalled
        For a catalogue model that is not downloaded (the message says how to get it), and,
        as its subclass :class:`UnknownModel`, for anything that is neither an existing path
        nor a catalogue name (the message lists the known names).
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    name = os.fspath(name_or_path)
    known = [entry.name for entry in catalogue()]
    if name not in known:
        raise UnknownModel(f"no model file {name!r} and no catalogue model of that name; known models: {', '.join(known)}")
    cached = installed_path(model_entry(name))
    if not cached.is_file():
        raise ModelNotInstalled(how_to_get(name))
    return cached


def cached_model_name(path: str | os.PathLike) -> str | None:
    """The name of the catalogue model whose downloaded file ``path`` is, or None (a file
    of the person's own, or a catalogue that cannot be read)."""
    try:
        resolved = Path(path).resolve()
        return next((entry.name for entry in catalogue() if installed_path(entry).resolve() == resolved), None)
    except (OSError, ValueError):
        return None


def why_a_cached_model_fails(path: str | os.PathLike) -> str | None:
    """For a catalogue model's downloaded file that an operator could not open: whether the
    file is damaged since (it fails its hash: remove it and download it again) or is the
    right file for another operator; None for a file that is not a catalogue model's."""
    from maskwork.core.models.hashing import HashMismatch, check_file, expected_hashes

    name = cached_model_name(path)
    if name is None:
        return None
    entry = model_entry(name)
    again = f"remove it (`maskwork models remove {name}`, or Deep learning > Models...) and download it again"
    if not expected_hashes(entry):  # no hash to tell a damaged file by
        return f"the downloaded file of the model {name} cannot be opened here; if it was damaged since, {again}"
    try:
        check_file(Path(path), entry)
    except HashMismatch:
        return f"the downloaded file of the model {name} is damaged: {again}"
    return f"{name} is a {entry.architecture} model ({entry.task}), for another operator than this one"


def remove_model(name: str) -> bool:
    """Delete model ``name``'s file, and any interrupted download of it, from the cache.

    Returns whether the model was installed.
    """
    entry = model_entry(name)
    partial_path(entry).unlink(missing_ok=True)
    try:
        installed_path(entry).unlink()
    except FileNotFoundError:
        return False
    return True
