"""Load a package's native libraries without holding the GIL, ahead of its import.

The first ``import torch`` or ``import SimpleITK`` in a worker thread spends most of its
time in ``dlopen`` of hundreds of megabytes of shared libraries (relocations, static
constructors). Python's import machinery calls ``dlopen`` with the GIL held, so the
window's main thread cannot run for that long. A call through ctypes releases the GIL,
so :func:`load_native_libraries` opens the package's extension modules by calling libc's
``dlopen`` through ctypes first; the import that follows finds them loaded and only runs
their Python-side initialisation. ``benchmarks/native_import_stall.py`` (idle 2-core
machine): the main thread's longest wait during the import went from 203 to 42 ms for
torch and from 43 to 12 ms for SimpleITK.

The loader is a no-op for packages already imported, on platforms without ``dlopen``
(Windows), and for packages it cannot find: the ordinary import then does the work and
reports any problem itself.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Iterable

from maskwork.operators.extras import import_optional

_lock = threading.Lock()
#: Packages whose libraries were opened (or found absent), so each is tried once.
_done: set[str] = set()


def load_native_libraries(module_names: Iterable[str]) -> list[Path]:
    """Open the extension modules of each top-level package that is not imported yet.

    Parameters
    ----------
    module_names : iterable of str
        Importable names (``"torch"``, ``"SimpleITK"``); only their top-level package counts.

    Returns
    -------
    list of Path
        The libraries opened now (empty when there was nothing to do).
    """
    dlopen = _dlopen()
    if dlopen is None:
        return []
    opened = []
    for name in module_names:
        package = name.partition(".")[0]
        with _lock:
            if package in _done or package in sys.modules:
                continue
            _done.add(package)
        for library in _extension_modules(package):
            # The handle is kept open on purpose: the import that follows opens the same
            # library again (a reference count), and unloading it in between would undo the work.
            if dlopen(os.fsencode(library), sys.getdlopenflags()):
                opened.append(library)
    return opened


def _extension_modules(package: str) -> list[Path]:
    """The compiled modules directly inside ``package``'s folder (not imported, only found)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = []
    for folder in spec.submodule_search_locations:
        try:
            found += sorted(path for path in Path(folder).iterdir() if path.name.endswith(suffixes))
        except OSError:
            continue
    return found


def _dlopen():
    """libc's ``dlopen`` as a ctypes function (ctypes releases the GIL around the call)."""
    if os.name != "posix":
        return None
    try:
        function = ctypes.CDLL(None).dlopen
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_void_p
    function.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return function


def import_ahead(module_names: Iterable[str], what: str) -> list[str]:
    """Import the modules an operator will need, libraries first (see the module notes).

    A front-end calls this in a worker when a person chooses an operator, so the import's
    remaining GIL-held set-up (torch's: 42 ms, see the module notes) happens then, and not in the middle
    of the first brush stroke or click that starts a preview.

    Parameters
    ----------
    module_names : iterable of str
        Modules to import; those already imported are skipped.
    what : str
        What needs them, for the message of a missing extra.

    Returns
    -------
    list of str
        The modules imported now.

    Raises
    ------
    MissingExtra
        A module's extra is not installed.
    """
    pending = [name for name in module_names if name not in sys.modules]
    load_native_libraries(pending)
    for name in pending:
        import_optional(name, what)
    return pending
