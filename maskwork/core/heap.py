"""The process's C heap: memory freed by one run kept for the next, given back later.

A run on a large photo allocates and frees arrays of tens to hundreds of megabytes again
and again (a 12-megapixel photo is 144 MB as float RGB). glibc's default gives each such
block its own ``mmap`` and returns it to the kernel when it is freed, so the next run
faults every page in again. On a virtual machine whose balloon device reports free pages
to the host, as on this project's Firecracker machine, the freed memory goes back to the
host within seconds, and getting it back is slow and stalls the other virtual CPU too.
Measured there: touching 600 MB again took 68-82 ms (once 363) when it had been freed
a moment before and 500-900 ms when it had been freed 5 seconds before; in the window
(``benchmarks/window_speed.py``), 12 MP runs of the CNN, registration and Quick select
had 50-180 ms of host steal each and main-thread stalls of up to 237 ms; the same
sitting's runs that kept freed memory had about none and stalls of 9-13 ms.

:func:`keep_freed_memory` therefore asks glibc for one heap (``M_ARENA_MAX`` 1, so blocks
freed in a worker thread are reused by the next worker), grown with ``brk`` only
(``M_MMAP_MAX`` 0) and not trimmed when blocks are freed (``M_TRIM_THRESHOLD``);
:func:`child_variables` gives the same as ``MALLOC_*`` environment variables for the
child processes maskwork starts (maskwork.operators.stoppable), and only for those.
The cost is memory: the process keeps its peak until :func:`give_back_freed_memory`
(``malloc_trim``), which the window calls when the person turns to another application
(maskwork.app.application.MemoryGiveBack), and a warm child once it has waited a minute
for its next call.

Only glibc (Linux) is affected. Elsewhere, when ``MASKWORK_KEEP_FREED_MEMORY=0``, when
the person set glibc's malloc variables themselves, or when another allocator is
preloaded (jemalloc, tcmalloc, mimalloc), nothing changes.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["OPT_OUT_VARIABLE", "keep_freed_memory", "give_back_freed_memory", "keeping_freed_memory",
           "child_variables"]

#: Set to ``0`` to leave glibc's defaults alone.
OPT_OUT_VARIABLE = "MASKWORK_KEEP_FREED_MEMORY"
#: The largest value mallopt takes (a C int): a heap whose free top exceeds 2 GB still
#: gives that top back at once, inside whichever ``free`` makes it so, with the GIL held
#: if Python's deallocation made the call (170-200 ms for SIFT's 2.8 GB on a 12 MP photo,
#: which therefore runs in the warm child: maskwork.operators.registration.features).
TRIM_THRESHOLD = 2**31 - 1
#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
#: The same settings for a child process, read by glibc when it starts.
CHILD_VARIABLES = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
#: Variables by which a person tunes glibc's malloc: when one is set, their choice stands.
_THEIR_OWN = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
              "MALLOC_TOP_PAD_")

_libc: ctypes.CDLL | None = None


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc, else None."""
    try:
        # "glibc 2.36"; instant, where platform.libc_ver() reads the Python executable.
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return None
    except (AttributeError, ValueError, OSError):  # not a GNU system
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Keep freed memory in this process; returns whether it does from now on.

    Call it first thing, before any thread starts (numpy's BLAS, Qt, a worker): heaps
    that threads made before it stay in use. Calling it again does nothing more.
    """
    global _libc
    if _libc is not None:
        return True
    if os.environ.get(OPT_OUT_VARIABLE) == "0":
        return False
    if any(name in os.environ for name in _THEIR_OWN) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if any(name in os.environ.get("LD_PRELOAD", "") for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return False  # glibc's mallopt would tune an allocator nobody uses
    libc = _glibc()
    if libc is None:
        return False
    # glibc accepts each of these (mallopt returns 1); should one be refused, those set
    # before it only keep a little more memory than the default, and nothing is reported.
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not all(libc.mallopt(parameter, value) == 1 for parameter, value in settings):
        return False
    _libc = libc
    return True


def child_variables() -> dict[str, str]:
    """Environment variables that make a child process keep freed memory as this one
    does (none when this one does not)."""
    return dict(CHILD_VARIABLES) if keeping_freed_memory() else {}


def keeping_freed_memory() -> bool:
    """Whether this process keeps freed memory: :func:`keep_freed_memory` succeeded here,
    or the process was started with :data:`CHILD_VARIABLES` by a parent that did."""
    return _kept_by() is not None


def give_back_freed_memory() -> None:
    """Return the heap's free memory to the system (``malloc_trim``): a few milliseconds
    per gigabyte kept. Does nothing unless this process keeps freed memory."""
    libc = _kept_by()
    if libc is not None:
        libc.malloc_trim(ctypes.c_size_t(0))


def _kept_by() -> ctypes.CDLL | None:
    """The glibc that keeps this process's freed memory, or None."""
    global _libc
    if _libc is None and all(os.environ.get(name) == value for name, value in CHILD_VARIABLES.items()):
        _libc = _glibc()
    return _libc
