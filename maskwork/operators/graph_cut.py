"""Two-label graph cuts on the pixel grid with contrast-sensitive smoothness (Boykov-Jolly).

Shared by the operators that build their own energies: Quick select (colour models, clicks,
star convexity) and the scribble CNN (its probabilities). PyMaxflow does the max-flow;
OpenCV's grabCut fixes its own energy and cannot take these.
"""

from __future__ import annotations

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
