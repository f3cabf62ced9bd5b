"""Optional dependencies: which extra installs each, importing them, and what to tell the
person when one is missing.

Two distributions come from this repository: ``maskwork-core`` holds the code (every
classical operator and the command line) and has the extras (pyproject.toml's
``[project.optional-dependencies]``: the window's Qt binding ``app``, deep learning,
batch processing, Segment Anything, napari); ``maskwork`` (packaging/maskwork-app) holds
no code, depends on ``maskwork-core[app]`` and forwards the desktop extras. Desktop users
install ``maskwork``, napari users ``maskwork-core[napari]``. Every import of an extra's
packages goes through :func:`import_optional`, and every front-end words a missing one
with :func:`needs_message`, so the person reads the pip command for what they installed
(``pip install 'maskwork[dl]'`` or ``pip install 'maskwork-core[dl]'``) instead of an
ImportError.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.metadata
import importlib.util
import re
import sys
import threading
from types import ModuleType
from typing import Iterable, Iterator

from maskwork.operators.context import InputError

#: The distribution with the code and the extras (the repository root's pyproject.toml).
CORE_DISTRIBUTION = "maskwork-core"
#: The desktop application's distribution (packaging/maskwork-app/pyproject.toml): no
#: code, ``maskwork-core[app]`` and these extras of maskwork-core under the same names.
APP_DISTRIBUTION = "maskwork"
APP_FORWARDED_EXTRAS = ("dl", "batch", "sam", "sam2", "all")

#: Importable top-level module -> the extra of maskwork-core that installs it.
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


def runs_as_desktop_application() -> bool:
    """Whether this maskwork was installed as the desktop application: the ``maskwork``
    distribution is installed, or this is the desktop bundle.

    Only a ``maskwork`` that depends on maskwork-core counts: an older ``maskwork`` that
    held the code itself (before the split) has no such requirement.
    """
    if getattr(sys, "frozen", False):  # PyInstaller's bundle: the window, without pip metadata
        return True
    try:
        required = importlib.metadata.requires(APP_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(re.match(r"maskwork[-_.]core\b", requirement, re.IGNORECASE) for requirement in required)


def _distribution_with(extras: set[str]) -> str:
    """The requirement that installs maskwork-core's ``extras``, named for the person's
    installation.

    ``maskwork`` when its forwarded extras cover them and either the window is what is
    missing (``maskwork`` is maskwork-core with ``app``) or the person installed the
    desktop application (``maskwork[dl]``); otherwise maskwork-core's own extras
    (``maskwork-core[dl]`` for a napari user, ``maskwork-core[napari]`` for anyone).
    """
    forwarded = extras - {"app"}
    if forwarded <= set(APP_FORWARDED_EXTRAS) and ("app" in extras or runs_as_desktop_application()):
        name, extras = APP_DISTRIBUTION, forwarded
    else:
        name = CORE_DISTRIBUTION
    return name + (f"[{','.join(sorted(extras))}]" if extras else "")


def requirements(modules: Iterable[str]) -> list[str]:
    """What pip installs to bring ``modules``: the distribution with the extras that bring
    them (``maskwork[dl]``, ``maskwork-core[napari]``: :func:`_distribution_with`), then
    any other package by its pip name."""
    modules = list(modules)
    extras = {EXTRA_FOR_MODULE[module] for module in modules if module in EXTRA_FOR_MODULE}
    others = [PIP_NAMES.get(module, module) for module in modules if module not in EXTRA_FOR_MODULE]
    return ([_distribution_with(extras)] if extras else []) + others


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
