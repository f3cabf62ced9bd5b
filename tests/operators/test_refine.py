"""Mask refinement operators, checked against exact geometry and the plain library calls."""

from __future__ import annotations

import contextlib
import io as stdio
import json

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data, filters, measure

from maskwork import cli
from maskwork.core import io
from maskwork.operators import Cancelled, InputError, RunContext, get
from maskwork.operators.refine import morphology as module


def run(op_id: str, mask, params=None, image=None, ctx=None):
    inputs = {"mask": mask} if image is None else {"mask": mask, "image": image}
    return get(op_id).run(inputs, params or {}, ctx)


def disc(radius: float, shape=(200, 200), centre=None) -> np.ndarray:
    rows, cols = np.indices(shape)
    r0, c0 = centre if centre is not None else (shape[0] // 2, shape[1] // 2)
    return (rows - r0) ** 2 + (cols - c0) ** 2 <= radius**2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


@pytest.fixture(scope="module")
def coins_mask() -> np.ndarray:
    """Otsu threshold of the coins photo: 24 coins, many with holes, plus specks."""
    coins = data.coins()
    return coins > filters.threshold_otsu(coins)


# ---------------------------------------------------------------------------- morphology


def test_open_removes_salt_noise():
    clean = disc(60)
    noisy = clean | (np.random.default_rng(0).random(clean.shape) < 0.03)
    opened = run("morphology", noisy, {"operation": "open", "radius": 2})["mask"]
    assert opened.dtype == bool
    assert iou(noisy, clean) < 0.95
    assert iou(opened, clean) >= 0.98


def test_close_fills_pepper_noise():
    clean = disc(60)
    noisy = clean & ~(np.random.default_rng(1).random(clean.shape) < 0.05)
    closed = run("morphology", noisy, {"operation": "close", "radius": 2})["mask"]
    assert iou(closed, clean) >= 0.98
    assert iou(noisy, clean) < 0.96


@pytest.mark.parametrize("operation, expected_radius", [("dilate", 45), ("erode", 35)])
def test_dilate_and_erode_change_the_area_as_a_disc_predicts(operation, expected_radius):
    out = run("morphology", disc(40), {"operation": operation, "radius": 5})["mask"]
    predicted = np.pi * expected_radius**2
    assert abs(np.count_nonzero(out) - predicted) / predicted < 0.03


@pytest.mark.parametrize("radius", [3, module.DISTANCE_TRANSFORM_RADIUS + 1, 25])
def test_distance_transform_path_equals_morphology_with_the_disc(radius):
    # Random blobs, some touching the image border, which must neither erode nor dilate.
    rng = np.random.default_rng(radius)
    blobs = cv2.GaussianBlur(rng.random((150, 170)).astype(np.float32), (0, 0), 6) > 0.5
    footprint = module.disc(radius)
    as_u8 = blobs.astype(np.uint8)
    np.testing.assert_array_equal(module.dilate(blobs, radius), cv2.dilate(as_u8, footprint).astype(bool))
    np.testing.assert_array_equal(module.erode(blobs, radius), cv2.erode(as_u8, footprint).astype(bool))
    np.testing.assert_array_equal(
        module.dilate(blobs, radius), ndi.binary_dilation(blobs, structure=footprint.astype(bool))
    )


def test_morphology_accepts_labels_and_leaves_the_border_alone():
    labels = np.zeros((60, 80), np.uint16)
    labels[:, :30] = 1
    labels[20:40, 30:50] = 7
    out = run("morphology", labels, {"operation": "erode", "radius": 3})["mask"]
    expected = run("morphology", labels > 0, {"operation": "erode", "radius": 3})["mask"]
    np.testing.assert_array_equal(out, expected)
    assert out[:, 0].all()  # the image border does not erode the mask


# ---------------------------------------------------------------------------- grow / shrink


@pytest.mark.parametrize("pixels", [5, -5])
def test_grow_shrink_moves_the_edge_of_a_disc_by_n_pixels(pixels):
    out = run("grow_shrink", disc(40), {"pixels": pixels})["mask"]
    predicted = np.pi * (40 + pixels) ** 2
    assert abs(np.count_nonzero(out) - predicted) / predicted < 0.03
    # Exact Euclidean: every added pixel lies within |pixels| of the disc, every removed
    # one within |pixels| of the outside.
    if pixels > 0:
        distance = ndi.distance_transform_edt(~disc(40))
        assert distance[out].max() <= pixels and (distance <= pixels).sum() == out.sum()
    else:
        distance = ndi.distance_transform_edt(disc(40))
        np.testing.assert_array_equal(out, distance > -pixels)


def test_shrink_then_grow_returns_the_disc():
    shrunk = run("grow_shrink", disc(50), {"pixels": -8})["mask"]
    back = run("grow_shrink", shrunk, {"pixels": 8})["mask"]
    assert iou(back, disc(50)) >= 0.97


def test_grow_by_zero_and_on_an_empty_mask():
    np.testing.assert_array_equal(run("grow_shrink", disc(20), {"pixels": 0})["mask"], disc(20))
    assert not run("grow_shrink", np.zeros((30, 30), bool), {"pixels": 50})["mask"].any()
    assert run("grow_shrink", np.ones((30, 30), bool), {"pixels": -50})["mask"].all()


# ---------------------------------------------------------------------------- holes and parts


def test_fill_holes_equals_scipy_on_coins(coins_mask):
    result = run("fill_holes", coins_mask)
    np.testing.assert_array_equal(result["mask"], ndi.binary_fill_holes(coins_mask))
    assert result.scores["holes"] > 0


def test_fill_holes_up_to_a_size():
    mask = disc(60)
    mask &= ~disc(20)  # a big hole
    mask[55:58, 100:103] = False  # a 9-pixel hole
    out = run("fill_holes", mask, {"max_size": 50})["mask"]
    assert out[56, 101] and not out[100, 100]
    np.testing.assert_array_equal(run("fill_holes", mask)["mask"], disc(60))


def _blobs(sizes, shape=(120, 400)) -> tuple[np.ndarray, list[np.ndarray]]:
    """Separate blobs of exactly ``sizes`` pixels, each a run of rows in its own column band."""
    mask = np.zeros(shape, bool)
    parts = []
    for i, size in enumerate(sizes):
        part = np.zeros(shape, bool)
        column = 10 + 40 * i
        width = 8
        full, rest = divmod(size, width)
        part[10 : 10 + full, column : column + width] = True
        part[10 + full, column : column + rest] = True
        assert part.sum() == size
        parts.append(part)
        mask |= part
    return mask, parts


def test_remove_small_objects_removes_exactly_the_blobs_under_min_size():
    sizes = [5, 20, 63, 64, 65, 200]
    mask, parts = _blobs(sizes)
    result = run("remove_small_objects", mask, {"min_size": 64})
    expected = np.zeros_like(mask)
    for size, part in zip(sizes, parts):
        if size >= 64:
            expected |= part
    np.testing.assert_array_equal(result["mask"], expected)
    assert result.scores["removed"] == 3


def test_remove_small_objects_connectivity_is_an_int_choice():
    diagonal = np.eye(10, dtype=bool)  # ten pixels touching only at corners
    assert run("remove_small_objects", diagonal, {"min_size": 5, "connectivity": "8"})["mask"].sum() == 10
    assert run("remove_small_objects", diagonal, {"min_size": 5, "connectivity": 4})["mask"].sum() == 0
    spec = get("remove_small_objects").param("connectivity")
    assert spec.choices == (4, 8) and spec.coerce("4") == 4 and isinstance(spec.coerce("4"), int)
    with pytest.raises(InputError, match="4, 8"):
        spec.coerce("6")


def test_keep_largest(coins_mask):
    sizes = [30, 500, 200]
    mask, parts = _blobs(sizes)
    np.testing.assert_array_equal(run("keep_largest", mask)["mask"], parts[1])
    labels, count = ndi.label(coins_mask, structure=np.ones((3, 3)))
    largest = labels == 1 + np.argmax(np.bincount(labels.ravel())[1:])
    result = run("keep_largest", coins_mask)
    np.testing.assert_array_equal(result["mask"], largest)
    assert result.scores["components"] == count
    assert not run("keep_largest", np.zeros((20, 20), bool))["mask"].any()


def test_connected_components_counts_the_coins(coins_mask):
    cleaned = run("fill_holes", coins_mask)["mask"]
    cleaned = run("remove_small_objects", cleaned, {"min_size": 100})["mask"]
    result = run("connected_components", cleaned)
    labels = result["labels"]
    assert labels.dtype == np.int32 and labels.shape == coins_mask.shape
    assert 22 <= result.scores["objects"] <= 26  # the photo shows 24 coins
    np.testing.assert_array_equal(np.unique(labels), np.arange(result.scores["objects"] + 1))
    np.testing.assert_array_equal(labels > 0, cleaned)


def test_connected_components_keeps_touching_labels_apart():
    labels = np.zeros((20, 30), np.uint8)
    labels[5:15, 5:15] = 3
    labels[5:15, 15:25] = 9
    assert run("connected_components", labels).scores["objects"] == 2
    assert run("connected_components", labels > 0).scores["objects"] == 1
    diagonal = np.eye(6, dtype=np.uint8)
    assert run("connected_components", diagonal, {"connectivity": 4}).scores["objects"] == 6
    assert run("connected_components", diagonal, {"connectivity": 8}).scores["objects"] == 1


# ---------------------------------------------------------------------------- smoothing, invert


def test_smooth_boundary_removes_jags_but_keeps_the_shape():
    clean = disc(60)
    rng = np.random.default_rng(3)
    rows, cols = np.indices(clean.shape)
    angle = np.arctan2(rows - 100, cols - 100)
    jitter = 4 * np.sin(40 * angle) + rng.normal(0, 1.5, clean.shape)
    noisy = np.hypot(rows - 100, cols - 100) <= 60 + jitter
    smooth = run("smooth_boundary", noisy, {"sigma": 3})["mask"]
    assert measure.perimeter(smooth) < 0.8 * measure.perimeter(noisy)
    assert iou(smooth, clean) >= 0.97


def test_invert():
    mask = disc(30, shape=(80, 90))
    out = run("invert", mask)["mask"]
    np.testing.assert_array_equal(out, ~mask)
    np.testing.assert_array_equal(run("invert", out)["mask"], mask)
    labels = mask.astype(np.int32) * 5
    np.testing.assert_array_equal(run("invert", labels)["mask"], ~mask)


# ---------------------------------------------------------------------------- bad input, cancel


def test_bad_masks_are_clear_errors():
    image = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(InputError, match="mask is 40x60 but the image is 50x60"):
        run("fill_holes", np.zeros((40, 60), bool), image=image)
    with pytest.raises(InputError, match="needs mask"):
        get("fill_holes").run({"image": image}, {})
    with pytest.raises(InputError, match="single-channel"):
        run("invert", np.dstack([np.zeros((5, 5)), np.ones((5, 5)), np.zeros((5, 5))]))
    with pytest.raises(InputError, match="2D"):
        run("invert", np.zeros(10))


def test_nan_counts_as_outside_and_inputs_stay_unchanged():
    mask = np.full((10, 10), np.nan)
    mask[2:8, 2:8] = 1.0
    before = mask.copy()
    out = run("invert", mask)["mask"]
    assert out.sum() == 100 - 36
    np.testing.assert_array_equal(mask, before)


def test_open_stops_at_its_midway_checkpoint():
    ctx = RunContext(on_progress=lambda fraction, _: ctx.cancel())
    with pytest.raises(Cancelled):
        run("morphology", disc(30), {"operation": "open", "radius": 2}, ctx=ctx)


def test_command_line_runs_a_refine_operator(tmp_path, coins_mask):
    image_path, mask_path, out_path = tmp_path / "coins.png", tmp_path / "mask.png", tmp_path / "filled.png"
    cv2.imwrite(str(image_path), data.coins())
    cv2.imwrite(str(mask_path), coins_mask.astype(np.uint8) * 255)
    out = stdio.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(
            ["run", "fill_holes", "--image", str(image_path), "--mask", str(mask_path), "-o", str(out_path), "--json"]
        )
    assert code == 0
    assert json.loads(out.getvalue())["operator"] == "fill_holes"
    np.testing.assert_array_equal(io.read_image(out_path) > 0, ndi.binary_fill_holes(coins_mask))

    labels_path = tmp_path / "labels.png"
    with contextlib.redirect_stdout(stdio.StringIO()):
        code = cli.main(
            ["run", "connected_components", "--image", str(image_path), "--mask", str(out_path),
             "-p", "connectivity=4", "-o", str(labels_path)]
        )
    assert code == 0
    assert io.read_image(labels_path).max() > 20


def _three_classes_with_specks():
    """Labels giving every pixel a class (1 left, 2 right, 5 a disc), with specks of
    other classes in each and a jagged edge between 1 and 2."""
    labels = np.ones((120, 160), np.uint16)
    labels[:, 80:] = 2
    labels[disc(25, labels.shape, (60, 40))] = 5
    truth = labels.copy()
    labels[10:13, 10:13] = 2  # 9 px of class 2 inside class 1
    labels[100:104, 120:124] = 5  # 16 px of class 5 inside class 2
    labels[58:61, 38:41] = 1  # 9 px of class 1 inside the disc
    labels[::8, 78:82] = 2  # teeth on the 1 | 2 edge
    return labels, truth


def test_clean_labels_removes_small_parts_into_the_class_around_them_and_keeps_the_ids():
    labels, truth = _three_classes_with_specks()
    result = run("clean_labels", labels, {"min_size": 20})
    out = result["labels"]
    assert out.dtype == np.uint16 and set(np.unique(out)) == {1, 2, 5}
    teeth = np.zeros(labels.shape, bool)
    teeth[::8, 78:82] = True
    np.testing.assert_array_equal(out[~teeth], truth[~teeth], err_msg="every speck took the class around it")
    assert result.scores["classes"] == 3 and result.scores["removed"] >= 3


def test_clean_labels_fills_unlabelled_holes_and_smooths_each_class():
    labels, truth = _three_classes_with_specks()
    labels[30:36, 100:106] = 0  # a hole in class 2
    labels[:, :4] = 0  # unlabelled ground at the border stays
    out = run("clean_labels", labels, {"min_size": 0, "fill_holes": True})["labels"]
    assert (out[30:36, 100:106] == 2).all() and (out[:, :4] == 0).all()
    smooth = run("clean_labels", labels, {"min_size": 20, "sigma": 2.0})["labels"]
    assert set(np.unique(smooth)) == {0, 1, 2, 5}
    edge = slice(20, 100), slice(70, 90)  # the teeth are gone, the edge sits where it was
    assert np.mean(smooth[edge] == truth[edge]) > 0.97
    assert np.mean(smooth[disc(22, labels.shape, (60, 40))] == 5) == 1.0


def test_mask_operators_refuse_labels_that_give_every_pixel_a_class():
    labels, _ = _three_classes_with_specks()
    for op_id in ("fill_holes", "remove_small_objects", "smooth_boundary", "morphology", "keep_largest",
                  "grow_shrink", "invert"):
        with pytest.raises(InputError, match="clean_labels"):
            run(op_id, labels)
    assert run("fill_holes", np.ones((20, 20), bool))["mask"].all(), "a whole mask is still a mask"


def test_clean_labels_from_the_command_line_writes_the_class_ids(tmp_path):
    labels, truth = _three_classes_with_specks()
    io.write_image(tmp_path / "labels.png", labels)
    io.write_image(tmp_path / "image.png", np.zeros(labels.shape, np.uint8))
    code = cli.main(["run", "clean_labels", "--image", str(tmp_path / "image.png"), "--mask",
                     str(tmp_path / "labels.png"), "-p", "min_size=20", "-o", str(tmp_path / "clean.png")])
    assert code == 0
    written = io.read_image(tmp_path / "clean.png")
    assert set(np.unique(written)) == {1, 2, 5}


@pytest.mark.parametrize("dtype, big", [(np.uint32, 3_000_000_000), (np.int64, 10**12)])
def test_clean_labels_keeps_ids_in_the_billions_without_an_array_per_id(dtype, big):
    labels, truth = _three_classes_with_specks()
    labels, truth = labels.astype(dtype), truth.astype(dtype)
    labels[labels == 5], truth[truth == 5] = big, big
    out = run("clean_labels", labels, {"min_size": 20, "sigma": 1.0})["labels"]
    assert out.dtype == dtype and set(np.unique(out)) == {1, 2, big}
    inner = disc(20, labels.shape, (60, 40)) & (labels == big)
    assert (out[inner] == big).all()
