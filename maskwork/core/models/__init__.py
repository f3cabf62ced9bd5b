"""Pretrained model files: the catalogue, the cache folder, download and import (no Qt).

Operators take a catalogue name wherever they take a model file and turn it into a path
with :func:`resolve_model`; the window's Deep learning > Models... dialog and
``maskwork models`` download, import and remove the files.
"""

from maskwork.core.models.cache import (
    MODELS_FOLDER_VARIABLE,
    cached_model_name,
    how_to_get,
    installed_path,
    is_installed,
    models_folder,
    partial_bytes,
    partial_path,
    remove_model,
    resolve_model,
    state_text,
    why_a_cached_model_fails,
)
from maskwork.core.models.catalogue import (
    ModelEntry,
    ModelNotInstalled,
    UnknownModel,
    catalogue,
    human_bytes,
    model_entry,
)
from maskwork.core.models.download import (
    DownloadCancelled,
    DownloadError,
    Progress,
    download_model,
    import_model_file,
)
from maskwork.core.models.hashing import HashMismatch

__all__ = [
    "MODELS_FOLDER_VARIABLE",
    "DownloadCancelled",
    "DownloadError",
    "HashMismatch",
    "Progress",
    "download_model",
    "import_model_file",
    "ModelEntry",
    "ModelNotInstalled",
    "UnknownModel",
    "cached_model_name",
    "catalogue",
    "how_to_get",
    "human_bytes",
    "installed_path",
    "is_installed",
    "model_entry",
    "models_folder",
    "partial_bytes",
    "partial_path",
    "remove_model",
    "resolve_model",
    "state_text",
    "why_a_cached_model_fails",
]
