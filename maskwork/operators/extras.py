"""Optional dependencies: which extra of maskwork installs each, importing them, and what
to tell the person when one is missing.

A plain ``pip install maskwork`` runs every classical operator and the command line; deep
learning, batch processing, Segment Anything, napari and the window's Qt binding are
extras (pyproject.toml's ``[project.optional-dependencies]``). Every import of those
packages goes through :func:`import_optional`, and every front-end words a missing one
with :func:`needs_message`, so the person reads ``pip install 'maskwork[dl]'`` instead of
an ImportError.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Iterable, Iterator

from maskwork.operators.context import InputError

#: Importable top-level module -> the extra of maskwork that installs it.
EXTRA_FOR_MODULE = {
    "torch": "dl",
    "onnxruntime": "dl",
    "dask": "batch",
    "distributed": "batch",
    "segment_anything": "sam",
    "sam2": "sam2",
    "napari": "napari",
    "magicgui": "napari",
    "PySide6": "app",
    "pyqtgraph": "app",
    "superqt": "app",
}

#: pip's name for the modules whose distribution is called otherwise (dependencies of the
#: core, named when an installation lost one).
PIP_NAMES = {
    "cv2": "opencv-python-headless",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "PIL": "Pillow",
    "yaml": "PyYAML",
    "maxflow": "PyMaxflow",
    "pywt": "PyWavelets",
}


class MissingExtra(InputError):
    """A package from one of maskwork's extras is not installed; the message says which
    extra installs it."""


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it.

    A module set to None in ``sys.modules`` (how Python marks one that must not import,
    and how the tests take one away) counts as missing.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing, or a bad __spec__
        return False


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The modules among ``modules`` that are not installed, in order."""
    return [module for module in modules if not is_installed(module)]


def requirements(modules: Iterable[str]) -> list[str]:
    """What pip installs to bring ``modules``: ``maskwork[<extras>]`` for those an extra
    brings, then any other package by its pip name."""
    modules = list(modules)
    extras = sorted({EXTRA_FOR_MODULE[module] for module in modules if module in EXTRA_FOR_MODULE})
    others = [PIP_NAMES.get(module, module) for module in modules if module not in EXTRA_FOR_MODULE]
    return ([f"maskwork[{','.join(extras)}]"] if extras else []) + others


def install_command(modules: Iterable[str]) -> str:
    """The pip command that installs ``modules`` (the brackets quoted for the shell)."""
    return "pip install " + " ".join(f"'{name}'" if "[" in name else name for name in requirements(modules))


def needs_message(what: str, modules: Iterable[str]) -> str:
    """``"<what> needs torch: pip install 'maskwork[dl]'"``, for a menu, a panel or an error.

    In the desktop bundle, which leaves the extras out and has no pip, the message says so.
    """
    modules = list(modules)
    needed = f"{what} needs {', '.join(modules)}"
    if getattr(sys, "frozen", False):  # PyInstaller's bundle
        return f"{needed}, which this desktop bundle leaves out; install maskwork with {install_command(modules)} to use it"
    return f"{needed}: {install_command(modules)}"


def import_optional(module: str, what: str) -> ModuleType:
    """Import ``module`` (``"torch"``, ``"dask.distributed"``) for ``what`` needs it.

    Raises
    ------
    MissingExtra
        When the module, its package or another package of an extra that it imports
        (``distributed`` for ``dask.distributed``) is not installed; the message is
        :func:`needs_message`. An ImportError for anything else (a broken installation)
        propagates.
    """
    try:
        with _collector_paused():
            return importlib.import_module(module)
    except ImportError as error:
        missing = (error.name or module).split(".")[0]
        if missing != module.split(".")[0] and missing not in EXTRA_FOR_MODULE:
            raise
        raise MissingExtra(needs_message(what, [missing])) from None


# Serialises the imports that pause the collector, so that one ending does not switch the
# collector back on while another is still running.
_import_lock = threading.RLock()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Keep the cyclic garbage collector from running while an extension imports.

    torch's extension initialisation (``torch._C._initExtension``, run by ``import torch``)
    crashed the process with a segmentation fault when an allocation inside it set off an
    automatic collection, which walked objects torch had not finished building
    (faulthandler: "Garbage-collecting" inside torch/__init__.py, on the worker thread
    that imported it while the window went on). Deep-learning operators import torch in
    workers, so the collector waits until the import is done.
    """
    with _import_lock:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if was_enabled:
                gc.enable()
