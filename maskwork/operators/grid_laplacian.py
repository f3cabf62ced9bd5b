"""Graph Laplacians of the pixel grid restricted to some of its pixels: the linear systems
behind the random walker (segmentation) and the membrane fill (inpainting).

A pixel's neighbours are its four neighbours inside the image; an edge has a weight
(``horizontal[r, c]`` between (r, c) and (r, c + 1), ``vertical[r, c]`` between (r, c)
and (r + 1, c)). On the ``free`` pixels ``L_U x = b`` with ``b`` from
:func:`boundary_terms` makes each free pixel the weighted mean of its neighbours, the
fixed ones holding their values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # SciPy is imported where a system is built
    from scipy import sparse

__all__ = ["restricted_laplacian", "boundary_terms"]


def restricted_laplacian(
    horizontal: np.ndarray, vertical: np.ndarray, free: np.ndarray, screening: float = 0.0
) -> sparse.csr_array:
    """The grid Laplacian restricted to the ``free`` pixels, in CSR with sorted columns.

    Row order is the raster order of the free pixels. The diagonal holds the full degree
    (edges to fixed pixels included) plus ``screening`` (the prior's edges), so the matrix
    is positive definite whenever every connected group of free pixels touches a fixed one.
    """
    import scipy.sparse as sparse  # imported here: the window starts without SciPy

    rows, cols = free.shape
    n = int(np.count_nonzero(free))
    index = np.full((rows, cols), -1, np.int32)
    index[free] = np.arange(n, dtype=np.int32)

    up = np.zeros((rows, cols), bool)  # pixel and the one above are both free
    up[1:] = free[1:] & free[:-1]
    left = np.zeros((rows, cols), bool)
    left[:, 1:] = free[:, 1:] & free[:, :-1]
    down = np.zeros((rows, cols), bool)
    down[:-1] = up[1:]
    right = np.zeros((rows, cols), bool)
    right[:, :-1] = left[:, 1:]

    degree = np.full((rows, cols), float(screening))
    degree[:, :-1] += horizontal
    degree[:, 1:] += horizontal
    degree[:-1] += vertical
    degree[1:] += vertical

    # Entries per row in column order: up, left, diagonal, right, down.
    before = up.astype(np.int32)
    before += left
    counts = before + 1
    counts += right
    counts += down
    start = np.zeros((rows, cols), np.int32)
    start[free] = np.cumsum(counts[free], dtype=np.int64)[:n].astype(np.int32) - counts[free]
    nnz = int(counts[free].sum(dtype=np.int64))
    indptr = np.empty(n + 1, np.int32)
    indptr[:-1] = start[free]
    indptr[-1] = nnz
    data = np.empty(nnz)
    indices = np.empty(nnz, np.int32)

    # up: (r, c) -> (r - 1, c), weight vertical[r - 1, c]
    sel = up[1:]
    position = start[1:][sel]
    indices[position] = index[:-1][sel]
    data[position] = -vertical[sel]
    # left: (r, c) -> (r, c - 1), weight horizontal[r, c - 1]
    sel = left[:, 1:]
    position = start[:, 1:][sel] + up[:, 1:][sel]
    indices[position] = index[:, :-1][sel]
    data[position] = -horizontal[sel]
    # diagonal
    position = start[free] + before[free]
    indices[position] = index[free]
    data[position] = degree[free]
    # right: (r, c) -> (r, c + 1), weight horizontal[r, c]
    sel = right[:, :-1]
    position = start[:, :-1][sel] + before[:, :-1][sel] + 1
    indices[position] = index[:, 1:][sel]
    data[position] = -horizontal[sel]
    # down: (r, c) -> (r + 1, c), weight vertical[r, c]
    sel = down[:-1]
    position = start[:-1][sel] + before[:-1][sel] + 1 + right[:-1][sel]
    indices[position] = index[1:][sel]
    data[position] = -vertical[sel]

    matrix = sparse.csr_array((data, indices, indptr), shape=(n, n))
    matrix.has_sorted_indices = True
    return matrix


def boundary_terms(horizontal: np.ndarray, vertical: np.ndarray, fixed_values: np.ndarray) -> np.ndarray:
    """Per pixel, the sum of edge weight x value over its neighbours (values 0 where free)."""
    out = np.zeros(fixed_values.shape)
    out[:, :-1] += horizontal * fixed_values[:, 1:]
    out[:, 1:] += horizontal * fixed_values[:, :-1]
    out[:-1] += vertical * fixed_values[1:]
    out[1:] += vertical * fixed_values[:-1]
    return out
