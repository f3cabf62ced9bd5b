"""The registration Transform: warping any layer, JSON and ITK .tfm round trips."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from maskwork.operators.registration.transform import Transform, describe_matrix, identity_grid, warp_layer

FIXED_SHAPE = (300, 340)


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    return data.camera()


def similarity(angle=8.0, scale=0.9, tx=-25.0, ty=30.0) -> np.ndarray:
    a = np.deg2rad(angle)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty], [0, 0, 1.0]])


@pytest.fixture
def linear(camera) -> Transform:
    return Transform("similarity", similarity(), FIXED_SHAPE, camera.shape, parameters=describe_matrix(similarity()))


def interior(transform: Transform, moving_shape, margin: int = 3) -> np.ndarray:
    """Fixed pixels whose source lies well inside the moving image."""
    coords = transform.backward_coordinates()
    rows, cols = moving_shape[:2]
    return ((coords[..., 0] > margin) & (coords[..., 0] < cols - 1 - margin)
            & (coords[..., 1] > margin) & (coords[..., 1] < rows - 1 - margin))


# ------------------------------------------------------------------ construction and mapping


def test_matrix_and_shapes_are_normalised(camera):
    t = Transform("affine", similarity()[:2], (10.0, 20.0), camera.shape)
    assert t.matrix.shape == (3, 3) and t.matrix.dtype == np.float64
    assert t.fixed_shape == (10, 20) and t.moving_shape == camera.shape[:2]
    assert not t.deformable
    with pytest.raises(ValueError, match="kind"):
        Transform("warp", np.eye(3), (4, 4), (4, 4))
    with pytest.raises(ValueError, match="3x3"):
        Transform("affine", np.eye(4), (4, 4), (4, 4))
    with pytest.raises(ValueError, match="backward_map"):
        Transform("bspline", np.eye(3), (4, 4), (4, 4), backward_map=np.zeros((4, 5, 2)))


def test_map_points_and_inverse(linear):
    moving = np.array([[0.0, 0.0], [100.0, 50.0], [300.5, 400.25]])
    fixed = linear.map_points(moving)
    expected = moving @ linear.matrix[:2, :2].T + linear.matrix[:2, 2]
    np.testing.assert_allclose(fixed, expected)
    inverse = linear.inverse()
    assert inverse.fixed_shape == linear.moving_shape and inverse.moving_shape == linear.fixed_shape
    np.testing.assert_allclose(inverse.map_points(fixed), moving, atol=1e-9)
    assert inverse.parameters["scale"] == pytest.approx(1 / 0.9)
    assert linear.parameters["angle_degrees"] == pytest.approx(8.0)


def test_homography_maps_points_projectively(camera):
    h = np.array([[1.0, 0.05, 3.0], [0.02, 0.98, -4.0], [2e-4, -1e-4, 1.0]])
    t = Transform("homography", h, camera.shape, camera.shape)
    pts = np.array([[10.0, 20.0], [400.0, 300.0]])
    np.testing.assert_allclose(t.map_points(pts), cv2.perspectiveTransform(pts[None], h)[0])
    warped = t.apply(camera)
    np.testing.assert_array_equal(warped, cv2.warpPerspective(camera, h, (512, 512)))


def test_backward_coordinates_invert_the_matrix(linear):
    coords = linear.backward_coordinates()
    assert coords.shape == (*FIXED_SHAPE, 2) and coords.dtype == np.float32
    fixed = np.array([[0.0, 0.0], [339.0, 299.0], [120.0, 77.0]])
    back = coords[fixed[:, 1].astype(int), fixed[:, 0].astype(int)]
    np.testing.assert_allclose(linear.map_points(back), fixed, atol=1e-3)


# ------------------------------------------------------------------ warping any layer


def test_apply_matches_opencv_and_keeps_dtype_and_channels(linear, camera):
    out = linear.apply(camera)
    assert out.shape == FIXED_SHAPE and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.warpAffine(camera, linear.matrix[:2], (340, 300)))
    rgb = data.astronaut()
    assert linear.apply(rgb).shape == (*FIXED_SHAPE, 3)
    assert linear.apply(np.dstack([camera] * 4)).shape == (*FIXED_SHAPE, 4)
    six = linear.apply(np.dstack([camera] * 6))
    assert six.shape == (*FIXED_SHAPE, 6)
    np.testing.assert_array_equal(six[..., 5], out)
    assert linear.apply(camera[..., None]).shape == (*FIXED_SHAPE, 1)
    deep = linear.apply(camera.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and deep.max() > 255
    floats = linear.apply(camera.astype(np.float32) / 255, fill=np.nan)
    assert floats.dtype == np.float32 and np.isnan(floats).any()
    wide = linear.apply(camera.astype(np.int64) * 1000)
    assert wide.dtype == np.int64
    reference = linear.apply(camera.astype(np.float64) * 1000)
    assert np.abs(wide - reference).max() <= 0.5  # rounded, not truncated


def test_nearest_keeps_label_ids_exactly(linear, camera):
    labels = (np.arange(camera.size, dtype=np.int64).reshape(camera.shape) * 7919) % 1_000_003 + 70_000
    for dtype in (np.int32, np.int64, np.uint32, np.uint16, np.uint8):
        ids = (labels % np.iinfo(dtype).max).astype(dtype)
        warped = linear.apply(ids, interpolation="nearest")
        assert warped.dtype == dtype
        inside = interior(linear, camera.shape)
        assert np.isin(warped[inside], ids).all()
        assert np.all(warped[~interior(linear, camera.shape, margin=-2)] == 0)
    mask = camera > 128
    warped_mask = warp_layer(mask, linear, "mask")
    assert warped_mask.dtype == bool
    # A linear warp of the mask, thresholded, agrees almost everywhere.
    assert np.mean(warped_mask != (linear.apply(mask.astype(np.float32)) > 0.5)) < 0.02


def test_warp_layer_picks_interpolation_by_kind(linear, camera):
    markers = np.zeros(camera.shape, np.uint8)
    markers[100:200, 100:300] = 1
    markers[300:350, 50:400] = 2
    warped = warp_layer(markers, linear, "markers")
    assert set(np.unique(warped)) <= {0, 1, 2}
    image = warp_layer(camera, linear, "image")
    np.testing.assert_array_equal(image, linear.apply(camera))
    labels = warp_layer(markers.astype(np.int32) * 1000, linear, "labels")
    assert set(np.unique(labels)) <= {0, 1000, 2000}


def test_deformable_apply_uses_the_backward_map(linear, camera):
    bmap = linear.backward_coordinates()
    deformable = Transform("bspline", linear.matrix, FIXED_SHAPE, camera.shape, backward_map=bmap)
    assert deformable.deformable
    inside = interior(linear, camera.shape)
    diff = np.abs(deformable.apply(camera).astype(int) - linear.apply(camera).astype(int))
    assert diff[inside].max() <= 1
    labels = (camera // 16).astype(np.int32)
    np.testing.assert_array_equal(
        deformable.apply(labels, interpolation="nearest")[inside], linear.apply(labels, interpolation="nearest")[inside]
    )
    with pytest.raises(ValueError, match="inverse"):
        deformable.inverse()
    bare = Transform("demons", np.eye(3), FIXED_SHAPE, camera.shape)
    with pytest.raises(ValueError, match="backward map"):
        bare.apply(camera)


# ------------------------------------------------------------------ JSON


def test_json_round_trip(linear, tmp_path):
    linear.parameters["inliers_fixed"] = np.array([[1.5, 2.5]])
    data_out = json.loads(json.dumps(linear.to_json()))
    assert data_out["type"] == "similarity" and data_out["deformable"] is False
    assert np.asarray(data_out["matrix"]).shape == (3, 3)
    assert data_out["fixed_shape"] == list(FIXED_SHAPE)
    again = Transform.from_json(data_out)
    np.testing.assert_array_equal(again.matrix, linear.matrix)
    assert (again.kind, again.fixed_shape, again.moving_shape) == (linear.kind, linear.fixed_shape, linear.moving_shape)
    assert again.parameters["inliers_fixed"] == [[1.5, 2.5]]
    written = linear.save(tmp_path / "t.json")
    assert written == [tmp_path / "t.json"]
    loaded = Transform.load(tmp_path / "t.json")
    np.testing.assert_array_equal(loaded.matrix, linear.matrix)
    with pytest.raises(ValueError, match="matrix"):
        Transform.from_json({"type": "affine"})


def test_deformable_save_writes_the_map_beside_the_json(linear, camera, tmp_path):
    rng = np.random.default_rng(1)
    bmap = linear.backward_coordinates() + rng.normal(0, 0.5, (*FIXED_SHAPE, 2)).astype(np.float32)
    t = Transform("demons", linear.matrix, FIXED_SHAPE, camera.shape, backward_map=bmap, parameters={"metric": -0.9})
    written = t.save(tmp_path / "warp.json")
    assert written == [tmp_path / "warp.json", tmp_path / "warp_backward_map.tif"]
    saved = json.loads((tmp_path / "warp.json").read_text())
    assert saved["deformable"] is True and saved["backward_map"] == "warp_backward_map.tif"
    loaded = Transform.load(tmp_path / "warp.json")
    np.testing.assert_array_equal(loaded.backward_map, bmap)
    np.testing.assert_array_equal(loaded.apply(camera), t.apply(camera))
    assert loaded.parameters == {"metric": -0.9}


# ------------------------------------------------------------------ ITK .tfm


def _sitk_resample(moving: np.ndarray, tfm_path, fixed_shape) -> np.ndarray:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(moving.astype(np.float32))
    reference = sitk.Image(fixed_shape[1], fixed_shape[0], sitk.sitkFloat32)
    out = sitk.Resample(image, reference, sitk.ReadTransform(str(tfm_path)), sitk.sitkLinear, 0.0)
    return sitk.GetArrayFromImage(out)


@pytest.mark.parametrize("kind", ["translation", "rigid", "similarity", "affine"])
def test_tfm_round_trip_and_simpleitk_resamples_the_same(kind, camera, tmp_path):
    matrix = {
        "translation": np.array([[1, 0, -12.5], [0, 1, 7.25], [0, 0, 1.0]]),
        "rigid": similarity(scale=1.0),
        "similarity": similarity(),
        "affine": np.array([[0.95, 0.1, -20.0], [-0.07, 1.05, 15.0], [0, 0, 1.0]]),
    }[kind]
    t = Transform(kind, matrix, FIXED_SHAPE, camera.shape)
    path = tmp_path / f"{kind}.tfm"
    t.save_tfm(path)
    loaded = Transform.load_tfm(path, FIXED_SHAPE, camera.shape)
    np.testing.assert_allclose(loaded.matrix, matrix, atol=1e-9)
    assert loaded.kind == kind
    # SimpleITK resampling with the file = our warp (same pixel-centre convention).
    ours = t.apply(camera.astype(np.float32))
    theirs = _sitk_resample(camera, path, FIXED_SHAPE)
    inside = interior(t, camera.shape)
    assert np.abs(ours - theirs)[inside].mean() < 0.5
    assert np.abs(ours - theirs)[inside].max() < 3.0


def test_tfm_points_follow_itk_direction(linear, camera, tmp_path):
    import SimpleITK as sitk

    linear.save_tfm(tmp_path / "t.tfm")
    itk = sitk.ReadTransform(str(tmp_path / "t.tfm"))
    moving = np.array([[100.0, 200.0], [10.0, 20.0]])
    fixed = linear.map_points(moving)
    back = np.array([itk.TransformPoint(tuple(p)) for p in fixed])  # ITK: fixed -> moving
    np.testing.assert_allclose(back, moving, atol=1e-9)


def test_load_tfm_reads_centred_itk_transforms(camera, tmp_path):
    import SimpleITK as sitk

    euler = sitk.Euler2DTransform((120.0, 90.0), np.deg2rad(6.0), (4.0, -3.0))
    sitk.WriteTransform(euler, str(tmp_path / "euler.tfm"))
    t = Transform.load_tfm(tmp_path / "euler.tfm", FIXED_SHAPE, camera.shape)
    assert t.kind == "rigid"
    fixed = np.array([[50.0, 60.0], [300.0, 250.0]])
    moving = np.array([euler.TransformPoint(tuple(p)) for p in fixed])
    np.testing.assert_allclose(t.map_points(moving), fixed, atol=1e-9)


def test_unreadable_tfm_is_a_value_error(camera, tmp_path):
    (tmp_path / "bad.tfm").write_text("not a transform")
    with pytest.raises(ValueError, match="bad.tfm"):
        Transform.load_tfm(tmp_path / "bad.tfm", FIXED_SHAPE, camera.shape)


def test_a_homography_is_written_as_a_displacement_field_that_simpleitk_applies(camera, tmp_path):
    fixed_shape = (160, 200)
    h = Transform("homography", np.array([[1.02, 0.03, -8.0], [-0.02, 0.98, 5.0], [1e-4, -5e-5, 1.0]]),
                  fixed_shape, camera.shape)
    h.save_tfm(tmp_path / "h.tfm")
    loaded = Transform.load_tfm(tmp_path / "h.tfm", fixed_shape, camera.shape)
    np.testing.assert_allclose(loaded.backward_coordinates(), h.backward_coordinates(), atol=1e-4)
    ours = h.apply(camera.astype(np.float32))
    theirs = _sitk_resample(camera, tmp_path / "h.tfm", fixed_shape)
    inside = interior(h, camera.shape)
    assert np.abs(ours - theirs)[inside].mean() < 0.5


def test_a_deformable_transform_without_its_map_cannot_be_written(tmp_path):
    with pytest.raises(ValueError, match="backward map"):
        Transform("bspline", np.eye(3), (5, 5), (5, 5)).save_tfm(tmp_path / "b.tfm")


def test_deformable_tfm_is_a_displacement_field(camera, tmp_path):
    rows, cols = 120, 150
    grid = identity_grid((rows, cols))
    ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float32)
    bmap = grid + np.stack([3 * np.sin(ys / 20.0) + 40, 2 * np.cos(xs / 25.0) + 30], axis=-1)
    t = Transform("bspline", np.eye(3), (rows, cols), camera.shape, backward_map=bmap)
    t.save_tfm(tmp_path / "field.h5")
    loaded = Transform.load_tfm(tmp_path / "field.h5", (rows, cols), camera.shape, kind="bspline")
    assert loaded.kind == "bspline" and loaded.deformable
    np.testing.assert_allclose(loaded.backward_map, bmap, atol=1e-4)
    theirs = _sitk_resample(camera, tmp_path / "field.h5", (rows, cols))
    ours = t.apply(camera.astype(np.float32))
    assert np.abs(ours - theirs).mean() < 0.5


def test_tfm_errors_name_the_file_asked_for(tmp_path):
    transform = Transform("similarity", np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0], [0, 0, 1.0]]), (40, 50), (40, 50))
    with pytest.raises(ValueError, match=r"cannot read missing\.TFM: there is no such file"):
        Transform.load_tfm(tmp_path / "missing.TFM", (40, 50), (40, 50))
    proc = Path("/proc")
    if proc.is_dir():  # a folder that takes no new files, where SimpleITK's own write fails
        with pytest.raises(OSError) as failed:
            transform.save_tfm(proc / "x.tfm")
        assert str(failed.value).startswith("cannot write the ITK transform /proc/x.tfm: ")
        assert ".tmp" not in str(failed.value)
