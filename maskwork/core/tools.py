"""Painting tools as pure functions: each returns the patch it would write, never mutates.

A :class:`Patch` is the bounding box of the pixels a tool touches and their new values
there. :meth:`maskwork.core.document.Document.apply_patch` writes it and records the old
values for undo, so the canvas and the history both deal with the small box only.
Coordinates are (row, col) floats in pixel units; pixel centres sit on integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from maskwork.core.layers import Bounds


@dataclass
class Patch:
    """New values for ``data[bounds]``."""

    bounds: Bounds
    values: np.ndarray

    @property
    def offset(self) -> tuple[int, int]:
        """(row, col) of the patch's top-left pixel."""
        return self.bounds[0].start, self.bounds[1].start


def _clip_box(r0: float, c0: float, r1: float, c1: float, shape) -> Bounds | None:
    """Integer bounds covering [r0, r1] x [c0, c1], clipped to the array, or None if empty."""
    rows, cols = shape[:2]
    top, left = max(0, int(np.floor(r0))), max(0, int(np.floor(c0)))
    bottom, right = min(rows, int(np.ceil(r1)) + 1), min(cols, int(np.ceil(c1)) + 1)
    if top >= bottom or left >= right:
        return None
    return slice(top, bottom), slice(left, right)


def segment_footprint(
    start: tuple[float, float], end: tuple[float, float], radius: float, shape
) -> tuple[Bounds, np.ndarray] | None:
    """Pixels within ``radius`` of the segment start-end (a capsule), as a boolean box.

    Filling the capsule rather than stamping discs at the two ends is what interpolates a
    fast mouse drag: consecutive mouse positions may be far apart, and the stroke between
    them must still be solid.

    Returns
    -------
    (bounds, footprint) or None
        The clipped bounding box and a boolean array of its shape; None if the capsule
        misses the array entirely.
    """
    radius = max(float(radius), 0.5)
    (ra, ca), (rb, cb) = start, end
    bounds = _clip_box(min(ra, rb) - radius, min(ca, cb) - radius, max(ra, rb) + radius, max(ca, cb) + radius, shape)
    if bounds is None:
        return None
    rr = np.arange(bounds[0].start, bounds[0].stop, dtype=np.float32)[:, None]
    cc = np.arange(bounds[1].start, bounds[1].stop, dtype=np.float32)[None, :]
    dr, dc = rb - ra, cb - ca
    length2 = dr * dr + dc * dc
    if length2 == 0:
        t = 0.0
    else:
        # Projection of each pixel onto the segment, clamped to its ends.
        t = np.clip(((rr - ra) * dr + (cc - ca) * dc) / length2, 0.0, 1.0)
    dist2 = (rr - (ra + t * dr)) ** 2 + (cc - (ca + t * dc)) ** 2
    footprint = dist2 <= radius * radius
    if not footprint.any():
        return None
    return bounds, footprint


def brush(
    data: np.ndarray,
    start: tuple[float, float],
    end: tuple[float, float],
    radius: float,
    value: int,
    *,
    preserve: Sequence[int] | None = None,
) -> Patch | None:
    """Paint ``value`` along the segment from ``start`` to ``end``.

    Parameters
    ----------
    data : ndarray
        The layer's (row, col) array; not modified.
    start, end : (float, float)
        Previous and current mouse positions (row, col). Equal for a single click.
    radius : float
        Brush radius in pixels.
    value : int
        Label to paint (0 erases).
    preserve : sequence of int, optional
        Labels that the brush must not overwrite (paint "behind" them).

    Returns
    -------
    Patch or None
        None when the stroke lies outside the layer.
    """
    hit = segment_footprint(start, end, radius, data.shape)
    if hit is None:
        return None
    bounds, footprint = hit
    values = data[bounds].copy()
    if preserve:
        footprint &= ~np.isin(values, list(preserve))
    values[footprint] = value
    return Patch(bounds, values)


def eraser(data: np.ndarray, start, end, radius: float) -> Patch | None:
    """Set pixels along the segment to 0; see :func:`brush`."""
    return brush(data, start, end, radius, 0)


def box(data: np.ndarray, corner_a: tuple[float, float], corner_b: tuple[float, float], value: int) -> Patch | None:
    """Fill the axis-aligned rectangle spanned by two (row, col) corners with ``value``."""
    (ra, ca), (rb, cb) = corner_a, corner_b
    bounds = _clip_box(min(ra, rb), min(ca, cb), max(ra, rb), max(ca, cb), data.shape)
    if bounds is None:
        return None
    values = data[bounds].copy()
    values[...] = value
    return Patch(bounds, values)


def polygon_fill(data: np.ndarray, vertices: Sequence[tuple[float, float]], value: int) -> Patch | None:
    """Fill the polygon (or lasso path) with (row, col) ``vertices`` with ``value``.

    The path is closed automatically; self-intersecting lassos fill by the even-odd rule
    as OpenCV's fillPoly does.
    """
    points = np.asarray(vertices, dtype=np.float64).reshape(-1, 2)
    if len(points) < 3:
        return None
    bounds = _clip_box(points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max(), data.shape)
    if bounds is None:
        return None
    footprint = np.zeros((bounds[0].stop - bounds[0].start, bounds[1].stop - bounds[1].start), np.uint8)
    # fillPoly takes (x, y) int points; 4 fractional bits keep sub-pixel vertex accuracy.
    shift = 4
    local = np.round((points[:, ::-1] - (bounds[1].start, bounds[0].start)) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(footprint, [local], 1, lineType=cv2.LINE_8, shift=shift)
    values = data[bounds].copy()
    values[footprint.astype(bool)] = value
    return Patch(bounds, values)


def flood_fill(
    data: np.ndarray,
    seed: tuple[int, int],
    value: int,
    *,
    reference: np.ndarray | None = None,
    tolerance: float = 0.0,
    connectivity: int = 4,
) -> Patch | None:
    """Fill the connected region around ``seed`` with ``value``.

    Parameters
    ----------
    data : ndarray
        The (row, col) label array to fill; not modified.
    seed : (int, int)
        (row, col) where the fill starts.
    value : int
        Label written into the region.
    reference : ndarray, optional
        Image that decides the region (for example the photo under a markers layer):
        pixels join while they differ from the seed pixel by at most ``tolerance`` in
        every channel. Defaults to ``data`` itself (fill a same-label region).
    tolerance : float
        Largest allowed difference to the seed value in the reference.
    connectivity : {4, 8}
        Pixel neighbourhood.

    Returns
    -------
    Patch or None
        None when the seed is outside or the region already has ``value``.
    """
    row, col = int(round(seed[0])), int(round(seed[1]))
    if not (0 <= row < data.shape[0] and 0 <= col < data.shape[1]):
        return None
    source = data if reference is None else reference
    if source.shape[:2] != data.shape[:2]:
        raise ValueError("the reference image must have the layer's height and width")
    if source.ndim == 3:
        source = source[..., :3] if source.shape[2] >= 3 else source[..., 0]
    # floodFill accepts 8-bit or float32 with 1 or 3 channels; float32 holds uint16 exactly.
    source = np.ascontiguousarray(source if source.dtype == np.uint8 else source.astype(np.float32))
    mask = np.zeros((data.shape[0] + 2, data.shape[1] + 2), np.uint8)
    tol = (float(tolerance),) * 3
    flags = connectivity | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    _, _, _, (x, y, w, h) = cv2.floodFill(source, mask, (col, row), 0, tol, tol, flags)
    if w == 0 or h == 0:
        return None
    bounds = (slice(y, y + h), slice(x, x + w))
    region = mask[1 + y : 1 + y + h, 1 + x : 1 + x + w].astype(bool)
    values = data[bounds].copy()
    if np.all(values[region] == value):
        return None
    values[region] = value
    return Patch(bounds, values)
