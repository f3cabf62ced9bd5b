"""Feature-based homographies on photos warped by known random homographies.

    .venv/bin/python benchmarks/registration_homography.py [--half tuning|reporting|both]
        [--kinds K1,K2] [--limit N] [--inpainting DIR] [--grabcut DIR]

Each pair is a photo (the fixed image) and the same photo warped by a random fixed -> moving
homography (the moving image, of the fixed image's size), both 8-bit. The pair kinds:

- ``similarity``: rotation within +-30 degrees, scale 0.75..1.33, shift up to 5 %;
- ``rotate+scale``: any rotation, scale 0.45..0.6 or 1.6..2.2 (zoom out or in);
- ``perspective``: each corner moved up to 12 % of the image size, rotation within +-15;
- ``viewpoint``: the plane seen from a camera tilted 40..55 degrees about a random axis in
  the image plane (focal length 1.0..1.4 times the larger side), fitted into the frame;
- ``blur+noise``: a mild perspective, then Gaussian blur (sigma 1..2.5 px) and noise
  (sigma 4..10 grey levels);
- ``photometric``: a mild perspective, then gamma 0.6..1.7, contrast 0.6..1.4 and
  brightness -40..+40;
- ``large``: a mild perspective of the photo upscaled (cubic) to about 4 megapixels, on the
  first three photos of each half only (SIFT at that size takes seconds).

Every moving image also gets noise of sigma 1.5 grey levels; where the warp shrinks the
photo it is blurred first (no aliasing). The random numbers come from a seed made of the
photo's name and the kind, so each pair is the same in every run.

Photos: the TUNING half is scikit-image's astronaut, coffee, chelsea, camera, rocket and
brick plus six photos of the GrabCut set (``../shared/data/grabcut/images``, every other one
of the first twelve by name); the REPORTING half, which no default was tuned on, is
scikit-image's immunohistochemistry, hubble_deep_field, gravel and coins plus the eight
photos of ``../shared/data/inpainting/ldm_inpainting_examples``. The photos are read from
there, never copied; a missing folder only leaves its photos out. The defaults of
``register_features`` were chosen on the tuning half only (see the operator's module
docstring); both halves are printed.

Methods, on the same pairs in the same run:

- ``maskwork``: ``register_features(fixed, moving, model="homography")``, every other
  parameter at its default;
- ``plain MAGSAC``: ``cv2.SIFT_create()``, ``cv2.BFMatcher().knnMatch(k=2)`` with Lowe's ratio
  0.75, ``cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 3.0)`` (OpenCV's default threshold,
  confidence and iterations), on ``cv2.cvtColor(..., COLOR_RGB2GRAY)``;
- ``plain RANSAC``: the same keypoints and matches with ``cv2.RANSAC`` (reference; its CPU
  time includes the detection and matching it shares with plain MAGSAC).

Score of a pair: the point error, the mean distance (px) over a grid of fixed-image points
(every 1/64 of the larger side) whose true moving position lies inside the moving image (the
overlap), between each point and where the found moving -> fixed homography sends its true
moving position. A pair FAILS when no homography comes back (an error, too few matches) or
its point error exceeds 10 px. Columns: pairs, failures, pairs within 1 px and within 3 px,
the median point error (a failure counts as infinitely far), the mean over the pairs every
method solved, and the median CPU seconds per pair, this process's and its child processes'
(maskwork finds the keypoints of large images and of simulated tilted views in its warm
child process; this machine's cores are shared, wall time is noise). Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from maskwork.operators import InputError  # noqa: E402
from maskwork.operators.registration.features import register_features  # noqa: E402

KINDS = ("similarity", "rotate+scale", "perspective", "viewpoint", "blur+noise", "photometric", "large")
#: Photos per half that also get a ``large`` pair.
LARGE_PHOTOS = 3
#: Megapixels of a ``large`` pair.
LARGE_MEGAPIXELS = 4.0
#: A pair fails when its point error is above this (px).
FAILURE_PX = 10.0
TUNING_SKIMAGE = ("astronaut", "coffee", "chelsea", "camera", "rocket", "brick")
REPORTING_SKIMAGE = ("immunohistochemistry", "hubble_deep_field", "gravel", "coins")


# ------------------------------------------------------------------ photos


def photos(half: str, grabcut: Path, inpainting: Path) -> list[tuple[str, np.ndarray]]:
    """(name, 8-bit gray or RGB photo) of one half, in a fixed order."""
    from skimage import data

    names = TUNING_SKIMAGE if half == "tuning" else REPORTING_SKIMAGE
    found = [(name, getattr(data, name)()) for name in names]
    if half == "tuning":
        files = sorted((grabcut / "images").glob("*.jpg"))[:12:2] if grabcut.is_dir() else []
    else:
        files = sorted(p for p in inpainting.glob("*.png") if not p.stem.endswith("_mask")) if inpainting.is_dir() else []
    for path in files:
        found.append((path.stem, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)))
    return found


# ------------------------------------------------------------------ pairs


def _about_centre(linear: np.ndarray, centre_from, centre_to) -> np.ndarray:
    """Homography that applies ``linear`` (3x3) around ``centre_from`` and lands on ``centre_to``."""
    to_origin = np.array([[1, 0, -centre_from[0]], [0, 1, -centre_from[1]], [0, 0, 1.0]])
    back = np.array([[1, 0, centre_to[0]], [0, 1, centre_to[1]], [0, 0, 1.0]])
    return back @ linear @ to_origin


def _rotation_scale(angle_deg: float, scale: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), 0], [scale * np.sin(a), scale * np.cos(a), 0], [0, 0, 1.0]])


def _corner_jitter(rng, cols: int, rows: int, fraction: float, angle_range: float) -> np.ndarray:
    corners = np.float32([[0, 0], [cols, 0], [cols, rows], [0, rows]])
    moved = corners + rng.uniform(-fraction, fraction, (4, 2)).astype(np.float32) * np.float32([cols, rows])
    jitter = cv2.getPerspectiveTransform(corners, moved)
    centre = (cols / 2, rows / 2)
    return _about_centre(_rotation_scale(rng.uniform(-angle_range, angle_range), 1.0), centre, centre) @ jitter


def _tilted_view(rng, cols: int, rows: int) -> np.ndarray:
    """The plane seen from a camera tilted 40..55 degrees, scaled to fill the frame."""
    focal = max(cols, rows) * rng.uniform(1.0, 1.4)
    camera = np.array([[focal, 0, 0], [0, focal, 0], [0, 0, 1.0]])
    axis_angle = rng.uniform(0, np.pi)
    tilt = np.deg2rad(rng.uniform(40, 55))
    rotation, _ = cv2.Rodrigues(np.array([np.cos(axis_angle), np.sin(axis_angle), 0.0]) * tilt)
    view = camera @ rotation @ np.linalg.inv(camera)
    centred = _about_centre(view, (cols / 2, rows / 2), (0, 0))
    corners = cv2.perspectiveTransform(np.float64([[[0, 0], [cols, 0], [cols, rows], [0, rows]]]), centred)[0]
    low, high = corners.min(axis=0), corners.max(axis=0)
    fit = min(cols / (high[0] - low[0]), rows / (high[1] - low[1])) * rng.uniform(0.9, 1.15)
    middle = (low + high) / 2
    return _about_centre(np.diag([fit, fit, 1.0]), middle, (cols / 2, rows / 2)) @ centred


def random_homography(kind: str, rng: np.random.Generator, cols: int, rows: int) -> np.ndarray:
    """A fixed -> moving homography of ``kind`` for a ``cols`` x ``rows`` image."""
    centre = (cols / 2, rows / 2)
    if kind == "similarity":
        shift = rng.uniform(-0.05, 0.05, 2) * (cols, rows)
        linear = _rotation_scale(rng.uniform(-30, 30), float(np.exp(rng.uniform(np.log(0.75), np.log(1.33)))))
        return _about_centre(linear, centre, (centre[0] + shift[0], centre[1] + shift[1]))
    if kind == "rotate+scale":
        scale = rng.uniform(0.45, 0.6) if rng.random() < 0.5 else rng.uniform(1.6, 2.2)
        return _about_centre(_rotation_scale(rng.uniform(-180, 180), scale), centre, centre)
    if kind == "perspective":
        return _corner_jitter(rng, cols, rows, 0.12, 15)
    if kind == "viewpoint":
        return _tilted_view(rng, cols, rows)
    return _corner_jitter(rng, cols, rows, 0.06, 10)  # blur+noise, photometric, large


def _smallest_scale(homography: np.ndarray, cols: int, rows: int) -> float:
    """Smallest singular value of the homography's Jacobian over the image's corners and centre."""
    smallest = np.inf
    for x, y in ((0, 0), (cols, 0), (cols, rows), (0, rows), (cols / 2, rows / 2)):
        u, v, w = homography @ (x, y, 1.0)
        jacobian = (homography[:2, :2] * w - np.outer((u, v), homography[2, :2])) / w**2
        smallest = min(smallest, float(np.linalg.svd(jacobian, compute_uv=False)[-1]))
    return smallest


def make_pair(photo: np.ndarray, name: str, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fixed, moving, true fixed -> moving homography) of one pair."""
    rng = np.random.default_rng(zlib.crc32(f"{name}/{kind}".encode()))
    fixed = photo
    if kind == "large":
        factor = np.sqrt(LARGE_MEGAPIXELS * 1e6 / (photo.shape[0] * photo.shape[1]))
        fixed = cv2.resize(photo, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    rows, cols = fixed.shape[:2]
    forward = random_homography(kind, rng, cols, rows)
    source = fixed.astype(np.float32)
    shrink = _smallest_scale(forward, cols, rows)
    if shrink < 1:  # blur first, as a camera's optics would, so the warp does not alias
        source = cv2.GaussianBlur(source, (0, 0), 0.5 * np.sqrt(1 / shrink**2 - 1))
    moving = cv2.warpPerspective(source, forward, (cols, rows), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    noise = 1.5
    if kind == "blur+noise":
        moving = cv2.GaussianBlur(moving, (0, 0), rng.uniform(1.0, 2.5))
        noise = rng.uniform(4, 10)
    elif kind == "photometric":
        gamma, contrast, brightness = rng.uniform(0.6, 1.7), rng.uniform(0.6, 1.4), rng.uniform(-40, 40)
        moving = 255 * (np.clip(moving, 0, 255) / 255) ** gamma * contrast + brightness
    moving = moving + rng.normal(0, noise, moving.shape)
    return fixed, np.clip(np.round(moving), 0, 255).astype(np.uint8), forward


def point_error(found: np.ndarray, forward: np.ndarray, fixed_shape, moving_shape) -> float:
    """Mean distance (px) over the overlap's grid between fixed points and their round trip.

    A fixed point goes to the moving image by the true ``forward`` homography and back by the
    ``found`` moving -> fixed one; only points that land inside the moving image count.
    """
    rows, cols = fixed_shape[:2]
    step = max(rows, cols) / 64
    ys, xs = np.mgrid[0:rows:step, 0:cols:step]
    fixed = np.column_stack([xs.ravel(), ys.ravel()])
    moving = cv2.perspectiveTransform(fixed[None], forward)[0]
    inside = (moving[:, 0] >= 0) & (moving[:, 0] <= moving_shape[1] - 1) & (moving[:, 1] >= 0) & (moving[:, 1] <= moving_shape[0] - 1)
    back = cv2.perspectiveTransform(moving[inside][None], np.asarray(found, np.float64))[0]
    distance = np.linalg.norm(back - fixed[inside], axis=1)
    return float(distance.mean()) if np.all(np.isfinite(distance)) else np.inf


# ------------------------------------------------------------------ methods


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def plain_sift_matches(fixed: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Moving and fixed points of plain SIFT matches passing Lowe's 0.75 ratio test."""
    sift = cv2.SIFT_create()
    kp_fixed, desc_fixed = sift.detectAndCompute(_gray(fixed), None)
    kp_moving, desc_moving = sift.detectAndCompute(_gray(moving), None)
    if desc_fixed is None or desc_moving is None:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    good = [m for m, *rest in cv2.BFMatcher().knnMatch(desc_moving, desc_fixed, k=2)
            if rest and m.distance < 0.75 * rest[0].distance]
    src = np.float32([kp_moving[m.queryIdx].pt for m in good]).reshape(-1, 2)
    dst = np.float32([kp_fixed[m.trainIdx].pt for m in good]).reshape(-1, 2)
    return src, dst


def plain_homography(src: np.ndarray, dst: np.ndarray, method: int) -> np.ndarray | None:
    if len(src) < 4:
        return None
    homography, _ = cv2.findHomography(src, dst, method, 3.0)
    return homography


def cpu_seconds() -> float:
    """CPU seconds of this process and of its child processes, running or ended (the
    running ones read from /proc, where there is one)."""
    ended = os.times()
    total = time.process_time() + ended.children_user + ended.children_system
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == os.getpid():  # fields after the name: state, ppid, ..., utime, stime
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_pair(fixed: np.ndarray, moving: np.ndarray) -> dict[str, tuple[np.ndarray | None, float]]:
    """{method: (moving -> fixed homography or None, CPU seconds)} for one pair."""
    results = {}
    start = cpu_seconds()
    try:
        found = register_features(fixed, moving, model="homography")["transform"].matrix
    except InputError:
        found = None
    results["maskwork"] = (found, cpu_seconds() - start)
    start = time.process_time()
    src, dst = plain_sift_matches(fixed, moving)
    shared = time.process_time() - start
    for name, method in (("plain MAGSAC", cv2.USAC_MAGSAC), ("plain RANSAC", cv2.RANSAC)):
        start = time.process_time()
        found = plain_homography(src, dst, method)
        results[name] = (found, shared + time.process_time() - start)
    return results


# ------------------------------------------------------------------ the run


def evaluate(half: str, kinds: tuple[str, ...], limit: int | None, grabcut: Path, inpainting: Path):
    """Rows (photo, kind, {method: (error, seconds)}) of one half, printed as they come."""
    rows = []
    chosen = photos(half, grabcut, inpainting)[:limit]
    for index, (name, photo) in enumerate(chosen):
        for kind in kinds:
            if kind == "large" and index >= LARGE_PHOTOS:
                continue
            fixed, moving, forward = make_pair(photo, name, kind)
            outcome = {}
            for method, (found, seconds) in run_pair(fixed, moving).items():
                error = point_error(found, forward, fixed.shape, moving.shape) if found is not None else np.inf
                outcome[method] = (error, seconds)
            rows.append((name, kind, outcome))
            print(f"  {half:<9} {name[:24]:<24} {kind:<12} "
                  + "  ".join(f"{m} {e:8.3f} px {s:6.2f} s" for m, (e, s) in outcome.items()), flush=True)
    return rows


def summarise(title: str, rows) -> None:
    methods = list(rows[0][2])
    header = (f"| {'kind':<12} | {'method':<13} | pairs | fail | <=1px | <=3px | median px | mean px (all solved) "
              f"| CPU s/pair |")
    print(f"\n{title}")
    print(header)
    print("|" + "|".join("-" * len(part) for part in header.split("|")[1:-1]) + "|")
    groups = [(kind, [r for r in rows if r[1] == kind]) for kind in dict.fromkeys(r[1] for r in rows)]
    groups.append(("all", rows))
    for kind, group in groups:
        solved_by_all = [r for r in group if all(r[2][m][0] <= FAILURE_PX for m in methods)]
        for method in methods:
            errors = [r[2][method][0] for r in group]
            common = [r[2][method][0] for r in solved_by_all]
            mean = f"{np.mean(common):9.3f} ({len(common):>3})" if common else f"{'-':>15}"
            print(f"| {kind:<12} | {method:<13} | {len(group):>5} | {sum(e > FAILURE_PX for e in errors):>4} "
                  f"| {sum(e <= 1 for e in errors):>5} | {sum(e <= 3 for e in errors):>5} "
                  f"| {statistics.median(errors):9.3f} | {mean:>20} "
                  f"| {statistics.median(r[2][method][1] for r in group):10.3f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--half", choices=("tuning", "reporting", "both"), default="both")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--limit", type=int, default=None, help="photos per half")
    parser.add_argument("--grabcut", type=Path, default=REPO.parent / "shared" / "data" / "grabcut")
    parser.add_argument("--inpainting", type=Path,
                        default=REPO.parent / "shared" / "data" / "inpainting" / "ldm_inpainting_examples")
    args = parser.parse_args(argv)
    kinds = tuple(args.kinds.split(","))
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {', '.join(sorted(unknown))}")
    halves = ("tuning", "reporting") if args.half == "both" else (args.half,)
    print(f"OpenCV {cv2.__version__}; maskwork register_features(model='homography'), other parameters at their defaults")
    warm = cv2.cvtColor(np.zeros((64, 64), np.uint8), cv2.COLOR_GRAY2RGB)
    plain_sift_matches(warm, warm)  # first-call costs stay out of the timings
    tables = [(half, evaluate(half, kinds, args.limit, args.grabcut, args.inpainting)) for half in halves]
    for half, rows in tables:
        if rows:
            summarise(f"{half.upper()} half ({len({r[0] for r in rows})} photos, {len(rows)} pairs)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
