"""Two-label graph cuts on the pixel grid with contrast-sensitive smoothness (Boykov-Jolly).

Shared by the operators that build their own energies: Quick select (colour models, clicks,
star convexity) and the scribble CNN (its probabilities), and by the full-resolution
refinements of Quick select and GrabCut, which cut only a band of undecided pixels
(:func:`band_cut`). PyMaxflow does the max-flow; OpenCV's grabCut fixes its own energy
and makes a node of every pixel it is given.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

#: Offsets whose edges, with their mirror images, make the 8-neighbourhood.
NEIGHBOUR_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))
#: Capacity that no cut can afford (hard constraints).
HARD = 1e9


def lab_colours(colours: np.ndarray) -> np.ndarray:
    """CIE Lab (OpenCV's 8-bit scaling) of uint8 RGB colours of any shape (..., 3), as float32."""
    if np.asarray(colours).dtype != np.uint8:
        raise TypeError(f"lab_colours takes uint8 RGB, got {np.asarray(colours).dtype}")
    colours = np.ascontiguousarray(colours)
    flat = colours.reshape(-1, 1, 3)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(colours.shape).astype(np.float32)


def squared_differences(lab: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Offset -> squared colour difference between each pixel and that neighbour (0 past the edge)."""
    rows, cols = lab.shape[:2]
    out = {}
    for d_row, d_col in NEIGHBOUR_OFFSETS:
        top, bottom = 0, rows - d_row
        left, right = max(0, -d_col), cols - max(0, d_col)
        difference = lab[top:bottom, left:right] - lab[top + d_row : bottom + d_row, left + d_col : right + d_col]
        squared = np.zeros((rows, cols), np.float32)
        squared[top:bottom, left:right] = (difference**2).sum(axis=2)
        out[(d_row, d_col)] = squared
    return out


def contrast_scale(squared: dict[tuple[int, int], np.ndarray]) -> float:
    """Boykov-Jolly beta: one over twice the mean squared neighbour difference."""
    return 1.0 / (2.0 * float(np.mean([values.mean() for values in squared.values()])) + 1e-9)


def edge_weights(squared: dict[tuple[int, int], np.ndarray], contrast: float) -> dict[tuple[int, int], np.ndarray]:
    """Offset -> ``exp(-contrast * difference) / length`` of the edge leaving each pixel."""
    return {offset: np.exp(-contrast * values) / np.hypot(*offset) for offset, values in squared.items()}


def grid_edge_weights(rgb: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Contrast-sensitive edge weights of a uint8 RGB image, contrast scale from the image itself."""
    squared = squared_differences(lab_colours(rgb))
    return edge_weights(squared, contrast_scale(squared))


def add_smoothness(graph, nodes: np.ndarray, weights: dict[tuple[int, int], np.ndarray], smoothness: float) -> None:
    """Add every neighbour edge of the grid ``nodes`` with capacity ``smoothness * weight``."""
    for (d_row, d_col), values in weights.items():
        structure = np.zeros((3, 3))
        structure[1 + d_row, 1 + d_col] = 1.0
        graph.add_grid_edges(nodes, weights=smoothness * values, structure=structure, symmetric=True)


def binary_cut(
    cost_first: np.ndarray,
    cost_second: np.ndarray,
    weights: dict[tuple[int, int], np.ndarray],
    smoothness: float,
    directed: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The labelling of least energy: True where the first label wins.

    Parameters
    ----------
    cost_first, cost_second : ndarray
        Per-pixel cost of each label ((row, col), float; :data:`HARD` forbids a label).
    weights : dict
        Edge weights from :func:`edge_weights`.
    smoothness : float
        Weight of the edges against the per-pixel costs.
    directed : (ndarray, ndarray), optional
        Flat pixel indices ``(after, before)``: a pixel in ``after`` may only take the
        first label when its ``before`` pixel does (star-convexity constraints).
    """
    import maxflow

    # Sized up front: a graph that grows its arrays as edges arrive takes about twice as
    # long to build.
    edge_count = len(weights) * cost_first.size + (0 if directed is None else directed[0].size)
    graph = maxflow.Graph[float](cost_first.size, edge_count)
    nodes = graph.add_grid_nodes(cost_first.shape)
    add_smoothness(graph, nodes, weights, smoothness)
    # Source = first label: a pixel cut to the second label pays its source capacity.
    graph.add_grid_tedges(nodes, cost_second, cost_first)
    if directed is not None:
        after, before = directed
        flat = nodes.ravel()
        graph.add_edges(flat[after], flat[before], np.full(after.size, HARD), np.zeros(after.size))
    graph.maxflow()
    return ~graph.get_grid_segments(nodes)


def band_cut(
    shape: tuple[int, int],
    rows: np.ndarray,
    cols: np.ndarray,
    colour_at: Callable[[np.ndarray, np.ndarray], np.ndarray],
    outside_first: np.ndarray,
    cost_first: np.ndarray,
    cost_second: np.ndarray,
    smoothness: float,
    contrast: float,
) -> np.ndarray:
    """Two labels for a band of pixels whose surroundings are decided: True where the first wins.

    Only the band's pixels become graph nodes (at 12 MP a few hundred thousand instead of
    the millions of their bounding box). Neighbours on the 8-neighbourhood pay
    ``smoothness * exp(-contrast * |colour difference|^2) / length`` for disagreeing; the
    edge from a band pixel to a decided pixel outside the band becomes a terminal capacity
    towards that pixel's label.

    Parameters
    ----------
    shape : (int, int)
        The grid's (rows, cols).
    rows, cols : ndarray
        The band's pixels, no two alike.
    colour_at : callable
        ``colour_at(rows, cols)`` -> (n, channels) float colours the differences are taken in.
    outside_first : ndarray
        Bool, the grid's shape: the label of each pixel outside the band (True = first).
    cost_first, cost_second : ndarray
        Each band pixel's cost of the first and of the second label (:data:`HARD`
        forbids one); not changed.
    smoothness, contrast : float
        Weight of the neighbour edges and the contrast scale (Boykov-Jolly beta).
    """
    import maxflow

    count = rows.size
    index = np.full(shape, -1, np.int32)
    index[rows, cols] = np.arange(count, dtype=np.int32)
    colours = colour_at(rows, cols)
    # A band pixel that takes the second label pays its neighbours outside that hold the
    # first, and the other way round.
    cost_first, cost_second = cost_first.astype(np.float64), cost_second.astype(np.float64)
    starts, ends, capacities = [], [], []
    for d_row, d_col in NEIGHBOUR_OFFSETS:
        for sign in (1, -1):
            n_rows, n_cols = rows + sign * d_row, cols + sign * d_col
            inside = np.flatnonzero((n_rows >= 0) & (n_rows < shape[0]) & (n_cols >= 0) & (n_cols < shape[1]))
            n_rows, n_cols = n_rows[inside], n_cols[inside]
            difference = colours[inside] - colour_at(n_rows, n_cols)
            squared = np.einsum("ij,ij->i", difference, difference)
            weight = smoothness * np.exp(-contrast * squared) / np.hypot(d_row, d_col)
            neighbour = index[n_rows, n_cols]
            in_band = neighbour >= 0
            if sign == 1:  # each band-band edge once
                starts.append(inside[in_band])
                ends.append(neighbour[in_band])
                capacities.append(weight[in_band])
            out = ~in_band
            first = outside_first[n_rows[out], n_cols[out]]
            pixel, weight = inside[out], weight[out]
            cost_second += np.bincount(pixel[first], weight[first], count)
            cost_first += np.bincount(pixel[~first], weight[~first], count)
    starts, ends, capacities = (np.concatenate(parts) for parts in (starts, ends, capacities))
    graph = maxflow.Graph[float](count, starts.size)
    nodes = graph.add_nodes(count)
    graph.add_edges(nodes[starts], nodes[ends], capacities, capacities)
    # Source = first label: a pixel cut to the second label pays its source capacity.
    graph.add_grid_tedges(nodes, cost_second, cost_first)
    graph.maxflow()
    return ~graph.get_grid_segments(nodes)
