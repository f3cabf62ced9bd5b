"""What every deep-learning operator shares: the device, memory, image keys and tiling.

Device choice: an operator's ``device`` parameter is ``"auto"``, ``"cuda"``, ``"mps"`` or
``"cpu"``. ``"auto"`` takes the preference the window sets from its settings
(:func:`set_preferred_device`), else the ``MASKWORK_DEVICE`` environment variable, else the
first of CUDA, MPS and the CPU that torch can use.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from maskwork.operators.context import InputError, RunContext, null_context
from maskwork.operators.extras import import_optional
from maskwork.operators.native_libraries import load_native_libraries

if TYPE_CHECKING:  # torch is imported only when a deep-learning operator runs
    import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
_preferred = "auto"


def set_preferred_device(name: str) -> None:
    """Make ``name`` (one of :data:`DEVICE_CHOICES`) what ``"auto"`` means from now on."""
    global _preferred
    if name not in DEVICE_CHOICES:
        raise InputError(f"device must be one of {', '.join(DEVICE_CHOICES)}; got {name!r}")
    _preferred = name


def preferred_device() -> str:
    """The device ``"auto"`` stands for before looking at the hardware."""
    if _preferred != "auto":
        return _preferred
    from_environment = os.environ.get("MASKWORK_DEVICE", "auto").strip().lower()
    return from_environment if from_environment in DEVICE_CHOICES else "auto"


def import_torch():
    """torch (its CPU threads kept within the usable cores), or a
    :class:`~maskwork.operators.extras.MissingExtra` that says how to install it."""
    # In a worker thread the first import would hold the GIL through its dlopen calls.
    load_native_libraries(["torch"])
    torch = import_optional("torch", "Deep learning")
    _limit_cpu_threads(torch)
    return torch


def leave_cores_free(count: int) -> None:
    """Keep ``count`` of the usable cores out of torch's CPU threads from now on.

    An interactive front-end (the window, the napari widget) leaves one for its UI
    thread: torch's threads wait for each other at every operation, so when one of them
    shares its core with the UI (or any other busy process) every step waits for it. On
    2 cores, with a busy process beside it, the scribble CNN's training in the window
    took more than 120 s on 2 threads and 8.6 s on 1 (6.2 s and 8.4 s with the machine
    otherwise idle). The command line, which has no UI to keep alive, uses every core.
    """
    global _cores_left_free
    if count < 0:
        raise ValueError(f"count must be 0 or more; got {count}")
    _cores_left_free = count


_cores_left_free = 0


def _limit_cpu_threads(torch) -> None:
    """Keep torch's CPU threads within the cores this process may run on, less those
    :func:`leave_cores_free` keeps (at least one thread).

    torch counts the machine's cores, which in a container or under an affinity mask
    can be more than the process gets; oversubscribed threads slow every step down.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity masks
        usable = os.cpu_count() or 1
    wanted = max(1, usable - _cores_left_free)
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)


def resolve_device(choice: str = "auto") -> torch.device:
    """The torch device for ``choice``.

    Raises
    ------
    InputError
        When a device that torch cannot use here was asked for by name.
    """
    torch = import_torch()
    if choice not in DEVICE_CHOICES:
        raise InputError(f"device must be one of {', '.join(DEVICE_CHOICES)}; got {choice!r}")
    if choice == "auto":
        choice = preferred_device()
    mps_available = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "mps" if mps_available else "cpu"
    elif choice == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was chosen, but this torch build sees no CUDA GPU; choose auto or cpu")
    elif choice == "mps" and not mps_available:
        raise InputError("MPS was chosen, but this machine has no Apple GPU torch can use; choose auto or cpu")
    return torch.device(choice)


def uses_half_precision(device: torch.device) -> bool:
    """Whether to run in float16: on GPUs, where it halves memory and doubles speed."""
    return device.type in ("cuda", "mps")


def autocast(device: torch.device):
    """A context that runs torch operations in float16 on GPUs and float32 on the CPU."""
    if not uses_half_precision(device):
        return nullcontext()
    torch = import_torch()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def available_memory(device: torch.device) -> int:
    """Bytes free for a new allocation on ``device`` (system memory for CPU and MPS)."""
    if device.type == "cuda":
        torch = import_torch()
        free, _total = torch.cuda.mem_get_info(device)
        # Memory torch's caching allocator holds but no tensor uses is free to torch too.
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return system_available_memory()


def system_available_memory() -> int:
    """Bytes of RAM the kernel says can be allocated without swapping."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return 0  # unknown (Windows, macOS without /proc): callers skip the warning


def format_bytes(count: float) -> str:
    """``count`` bytes as a short human-readable text (``"1.5 GB"``)."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(count) < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


@contextmanager
def out_of_memory_as_input_error(device: torch.device, hint: str = "choose a smaller tile size") -> Iterator[None]:
    """Turn torch's out-of-memory errors into an :class:`InputError` that says what to do."""
    try:
        yield
    except RuntimeError as error:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if "out of memory" not in str(error).lower():
            raise
        if device.type == "cuda":
            import_torch().cuda.empty_cache()
        raise InputError(f"the model ran out of memory on {device}; {hint}, or run on the CPU") from None


def image_key(image: np.ndarray, *extra: object) -> str:
    """A digest of the pixels (plus ``extra``) that names cached results for this image."""
    image = np.ascontiguousarray(image)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((image.shape, image.dtype.str, extra)).encode())
    digest.update(image.data)
    return digest.hexdigest()


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap``.

    The last tile ends at ``length``; a length shorter than a tile gives one tile at 0.
    """
    if length <= tile:
        return [0]
    stride = max(tile - overlap, 1)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_weights(height: int, width: int, overlap: int) -> np.ndarray:
    """A (height, width) float32 window that ramps up over ``overlap // 2`` pixels at each edge.

    Seams between tiles vanish when overlapping predictions are averaged with it; the
    smallest weight stays positive so pixels on the image border are never divided by 0.
    """
    ramp = max(overlap // 2, 1)

    def profile(size: int) -> np.ndarray:
        distance = np.minimum(np.arange(size), np.arange(size)[::-1]) + 1
        return np.minimum(distance / ramp, 1.0).astype(np.float32)

    return np.outer(profile(height), profile(width))


def predict_tiled(
    predict: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    tile: int,
    overlap: int,
    ctx: RunContext | None = None,
    progress: tuple[float, float] = (0.0, 1.0),
    message: str = "predicting",
) -> np.ndarray:
    """Run ``predict`` on overlapping tiles of ``image`` and blend the tiles' outputs.

    Parameters
    ----------
    predict : callable
        Maps a (h, w, ...) piece of ``image`` to a (h, w, classes) float array.
    image : ndarray
        (row, col) or (row, col, channel) array.
    tile, overlap : int
        Tile side and the overlap between neighbouring tiles, in pixels.
    ctx : RunContext, optional
        Progress (one step per tile, mapped into ``progress``) and cancellation.
    progress : tuple of float
        The part of the run's progress bar the tiles fill.
    message : str
        Progress message.

    Returns
    -------
    ndarray
        float32 (row, col, classes): the weighted mean of every tile covering a pixel.
    """
    ctx = ctx or null_context()
    if tile < 16 or overlap < 0 or overlap >= tile:
        raise InputError(f"tile must be at least 16 pixels and overlap smaller than it; got {tile} and {overlap}")
    height, width = image.shape[:2]
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    total, accumulated, weight_sum = len(rows) * len(cols), None, np.zeros((height, width), np.float32)
    done = 0
    for row in rows:
        for col in cols:
            ctx.check()
            piece = image[row : row + tile, col : col + tile]
            output = np.asarray(predict(piece), dtype=np.float32)
            if output.shape[:2] != piece.shape[:2]:
                raise InputError(f"the model returned {output.shape[:2]} for a {piece.shape[:2]} tile")
            if accumulated is None:
                accumulated = np.zeros((height, width, output.shape[2]), np.float32)
            weights = blend_weights(*piece.shape[:2], overlap)
            accumulated[row : row + tile, col : col + tile] += output * weights[..., None]
            weight_sum[row : row + tile, col : col + tile] += weights
            done += 1
            ctx.progress(progress[0] + (progress[1] - progress[0]) * done / total, f"{message}: tile {done}/{total}")
    return accumulated / weight_sum[..., None]


def memory_shortfall(needed: int, params: dict, headroom: float = 0.9) -> str | None:
    """A warning when ``needed`` bytes exceed what the chosen device has free, else None.

    Parameters
    ----------
    needed : int
        The operator's estimate, in bytes.
    params : dict
        The run's parameters; ``params["device"]`` (default ``"auto"``) picks the device.
    headroom : float
        Fraction of the free memory a run may take before the warning.
    """
    device = resolve_device(params.get("device", "auto"))
    free = available_memory(device)
    if free <= 0 or needed <= headroom * free:
        return None
    return (
        f"this run needs about {format_bytes(needed)} but {device} has {format_bytes(free)} free; "
        "it may run out of memory (a smaller tile size or another device needs less)"
    )
