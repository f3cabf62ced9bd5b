"""Landmark registration: corresponding points clicked on the fixed and moving images.

Landmark convention (shared with the window's landmark tool and ``--points`` on the command
line): each point is ``(row, col, label)``; label ``+k`` is landmark ``k`` on the FIXED
image and label ``-k`` the same landmark ``k`` on the MOVING image (k = 1, 2, 3, ...).
A pair is complete when both ``+k`` and ``-k`` are present.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registration.features import fit, umeyama
from maskwork.operators.registration.transform import Transform, describe_matrix
from maskwork.operators.registry import ScorePlot, register
from maskwork.operators.seeds import check_image

#: Fewest landmark pairs each model needs.
MIN_PAIRS = {"similarity": 2, "affine": 3, "homography": 4, "thin_plate_spline": 3}
#: Fixed-grid pixels evaluated per thin-plate-spline chunk (memory and cancellation).
_TPS_PIXELS_PER_CHUNK = 1 << 17


@register(
    "register_landmarks",
    title="Landmarks",
    category="Registration",
    outputs=("image", "transform"),
    panel_views=(ScorePlot(),),
)
def register_landmarks(
    image: np.ndarray,
    image2: np.ndarray,
    points,
    *,
    model: Literal["similarity", "affine", "homography", "thin_plate_spline"] = "similarity",
    ctx: RunContext | None = None,
) -> Result:
    """Align a moving image onto a fixed one from corresponding landmark pairs.

    Landmarks are ``(row, col, label)`` points: label ``+k`` marks landmark ``k`` on the
    FIXED image, label ``-k`` the same landmark ``k`` on the MOVING image. Every landmark
    needs its partner.

    Parameters
    ----------
    image : ndarray
        The fixed image (reference): gray, RGB or RGBA, any depth.
    image2 : ndarray
        The moving image, warped onto the fixed image's grid; its size may differ.
    points : list of (row, col, label)
        Landmarks: label +k on the fixed image, -k for the same landmark on the moving
        image (k = 1, 2, ...). Pixel coordinates, sub-pixel allowed.
    model : {"similarity", "affine", "homography", "thin_plate_spline"}
        Transform fitted by least squares: rotation, uniform scale and shift (2+ pairs);
        affine (3+); perspective homography (4+); or a thin-plate spline (3+) that passes
        exactly through every pair and bends smoothly in between.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["image"]``: the moving image on the fixed grid; ``outputs["transform"]``:
        a :class:`Transform`. ``scores``: ``residual_k`` (fixed-image px) for each pair k,
        ``mean_residual`` and ``n_pairs``.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Pairing landmarks")
    fixed = check_image(image)
    moving = check_image(image2)
    labels, fixed_xy, moving_xy = pair_landmarks(points, fixed.shape[:2], moving.shape[:2])
    needed = MIN_PAIRS[model]
    if len(labels) < needed:
        raise InputError(
            f"{_article(model)} {_name(model)} needs at least {needed} landmark pairs, got {len(labels)} "
            "(label +k on the fixed image, -k on the moving image)"
        )

    ctx.progress(0.2, f"Fitting {_article(model)} {_name(model)} to {len(labels)} pairs")
    backward_map = None
    if model == "thin_plate_spline":
        _check_spread(fixed_xy, "fixed")
        tps = ThinPlateSpline(fixed_xy, moving_xy)  # fixed -> moving: what warping samples
        matrix = fit(moving_xy, fixed_xy, "affine")  # the linear part, moving -> fixed
        backward_map = tps.grid(fixed.shape[:2], ctx)
        residuals = np.linalg.norm(tps(fixed_xy) - moving_xy, axis=1)
    else:
        matrix = _fit_linear(moving_xy, fixed_xy, model)
        mapped = cv2.perspectiveTransform(moving_xy[None], matrix)[0]
        residuals = np.linalg.norm(mapped - fixed_xy, axis=1)

    parameters = {
        **describe_matrix(matrix),
        "landmarks": [int(k) for k in labels],
        "landmarks_fixed": fixed_xy.tolist(),
        "landmarks_moving": moving_xy.tolist(),
        "residuals": residuals.tolist(),
    }
    transform = Transform(model, matrix, fixed.shape[:2], moving.shape[:2], backward_map, parameters)
    ctx.progress(0.9, "Warping the moving image")
    warped = transform.apply(np.asarray(image2), interpolation="linear")
    scores = {f"residual_{k}": float(r) for k, r in zip(labels, residuals)}
    scores["mean_residual"] = float(residuals.mean())
    scores["n_pairs"] = len(labels)
    ctx.progress(1.0, f"{len(labels)} pairs, mean residual {scores['mean_residual']:.2f} px")
    return Result({"image": warped, "transform": transform}, scores=scores)


def pair_landmarks(points, fixed_shape, moving_shape) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Complete landmark pairs from ``(row, col, label)`` points.

    Returns
    -------
    labels : list of int
        The landmark numbers k, ascending.
    fixed_xy, moving_xy : ndarray
        (K, 2) float64 ``(x, y)`` = ``(col, row)`` positions on the fixed and moving images.

    Raises
    ------
    InputError
        For malformed points, label 0, a landmark number used twice on one image, points
        outside their image, or a landmark without its partner.
    """
    if points is None:
        raise InputError("landmark registration needs landmark pairs: label +k on the fixed image, -k on the moving image")
    found = {+1: {}, -1: {}}
    for point in points:
        try:
            row, col, label = (float(v) for v in point)
        except (TypeError, ValueError):
            raise InputError(f"a landmark is (row, col, label), got {point!r}") from None
        if not (np.isfinite(row) and np.isfinite(col)):
            raise InputError(f"a landmark's row and column must be finite numbers, got {point!r}")
        if not np.isfinite(label) or label != int(label) or label == 0:
            raise InputError(f"a landmark's label is +k (fixed image) or -k (moving image) with k >= 1, got {point!r}")
        side, k = (1 if label > 0 else -1), abs(int(label))
        rows, cols = fixed_shape if side > 0 else moving_shape
        name = "fixed" if side > 0 else "moving"
        if not (-0.5 <= row <= rows - 0.5 and -0.5 <= col <= cols - 0.5):
            raise InputError(f"landmark {k} at row {row:g}, col {col:g} lies outside the {rows}x{cols} {name} image")
        if k in found[side]:
            raise InputError(f"landmark {k} is placed twice on the {name} image")
        found[side][k] = (col, row)
    only_fixed = sorted(set(found[1]) - set(found[-1]))
    only_moving = sorted(set(found[-1]) - set(found[1]))
    if only_fixed or only_moving:
        parts = []
        if only_fixed:
            parts.append(f"{_numbers(only_fixed)} on the fixed image only (add label -k on the moving image)")
        if only_moving:
            parts.append(f"{_numbers(only_moving)} on the moving image only (add label +k on the fixed image)")
        raise InputError("unpaired landmarks: " + "; ".join(parts))
    labels = sorted(found[1])
    fixed_xy = np.array([found[1][k] for k in labels], np.float64).reshape(-1, 2)
    moving_xy = np.array([found[-1][k] for k in labels], np.float64).reshape(-1, 2)
    return labels, fixed_xy, moving_xy


def _name(model: str) -> str:
    return "thin-plate spline" if model == "thin_plate_spline" else model


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _numbers(ks: list[int]) -> str:
    return ("landmark " if len(ks) == 1 else "landmarks ") + ", ".join(str(k) for k in ks)


def _check_spread(xy: np.ndarray, name: str) -> None:
    """The points must span a plane (not all on one line) for affine-type models."""
    centred = xy - xy.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    if len(sv) < 2 or sv[1] < 1e-6 * max(sv[0], 1.0):
        raise InputError(f"the {name} landmarks lie on one line; spread them out so they span the image")
    if len(np.unique(np.round(xy, 6), axis=0)) < len(xy):
        raise InputError(f"two {name} landmarks sit on the same pixel")


def _fit_linear(src: np.ndarray, dst: np.ndarray, model: str) -> np.ndarray:
    if model == "similarity":
        if np.linalg.norm(src - src.mean(axis=0)) < 1e-9 or np.linalg.norm(dst - dst.mean(axis=0)) < 1e-9:
            raise InputError("the landmarks of one image all sit on the same pixel")
        return umeyama(src, dst, with_scale=True)
    _check_spread(src, "moving")
    _check_spread(dst, "fixed")
    if model == "affine":
        return fit(src, dst, "affine")
    if len(src) == 4:
        matrix = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    else:
        matrix, _ = cv2.findHomography(src, dst, 0)
    if matrix is None or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
        raise InputError("no homography fits these landmarks (three of them may lie on one line)")
    return matrix / matrix[2, 2]


class ThinPlateSpline:
    """2-D thin-plate spline through ``source`` -> ``target`` points (exact interpolation).

    ``f(p) = a0 + A p + sum_i w_i U(|p - source_i|)`` with ``U(r) = r^2 log r^2``; the
    coefficients solve the standard bordered system ``[[K, P], [P^T, 0]]``. Coordinates are
    centred and scaled internally for conditioning.

    Parameters
    ----------
    source, target : array_like
        (N, 2) points, N >= 3 and not all on one line.
    """

    def __init__(self, source, target) -> None:
        source = np.asarray(source, np.float64).reshape(-1, 2)
        target = np.asarray(target, np.float64).reshape(-1, 2)
        self.centre = source.mean(axis=0)
        self.scale = float(np.abs(source - self.centre).max()) or 1.0
        self.source = (source - self.centre) / self.scale
        n = len(source)
        system = np.zeros((n + 3, n + 3))
        system[:n, :n] = _tps_kernel(self.source, self.source)
        system[:n, n] = 1.0
        system[:n, n + 1:] = self.source
        system[n, :n] = 1.0
        system[n + 1:, :n] = self.source.T
        rhs = np.zeros((n + 3, 2))
        rhs[:n] = target
        try:
            self.coefficients = np.linalg.solve(system, rhs)
        except np.linalg.LinAlgError:
            raise InputError("the thin-plate spline cannot pass through these landmarks (duplicates or all on one line)") from None
        if not np.all(np.isfinite(self.coefficients)):
            raise InputError("the thin-plate spline cannot pass through these landmarks (duplicates or all on one line)")

    def __call__(self, xy) -> np.ndarray:
        """Map (M, 2) points."""
        p = (np.asarray(xy, np.float64).reshape(-1, 2) - self.centre) / self.scale
        return self._evaluate(p[:, 0], p[:, 1])

    def _evaluate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        # Element-wise per landmark: thin matrix products (M x 2 @ 2 x N) are slow in BLAS.
        n = len(self.source)
        w, affine = self.coefficients[:n], self.coefficients[n:]
        out_x = affine[0, 0] + affine[1, 0] * x + affine[2, 0] * y
        out_y = affine[0, 1] + affine[1, 1] * x + affine[2, 1] * y
        for (sx, sy), (wx, wy) in zip(self.source, w):
            r2 = (x - sx) ** 2 + (y - sy) ** 2
            with np.errstate(divide="ignore", invalid="ignore"):
                u = r2 * np.log(r2)
            u[r2 == 0] = 0.0
            out_x += wx * u
            out_y += wy * u
        return np.column_stack([out_x, out_y])

    def grid(self, shape, ctx: RunContext | None = None) -> np.ndarray:
        """The spline evaluated at every pixel ``(x, y)`` of a ``(rows, cols)`` grid, float32 (rows, cols, 2)."""
        rows, cols = shape
        out = np.empty((rows, cols, 2), np.float32)
        xs = (np.arange(cols, dtype=np.float64) - self.centre[0]) / self.scale
        step = max(1, _TPS_PIXELS_PER_CHUNK // cols)
        for top in range(0, rows, step):
            if ctx is not None:
                ctx.progress(0.2 + 0.65 * top / rows, "Evaluating the thin-plate spline")
            bottom = min(rows, top + step)
            ys = (np.arange(top, bottom, dtype=np.float64) - self.centre[1]) / self.scale
            yy, xx = np.meshgrid(ys, xs, indexing="ij")
            out[top:bottom] = self._evaluate(xx.ravel(), yy.ravel()).reshape(bottom - top, cols, 2)
        return out


def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``U(|a_i - b_j|)`` for (M, 2) and (N, 2) points, as an (M, N) array."""
    r2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = r2 * np.log(r2)
    k[r2 == 0] = 0.0
    return k
