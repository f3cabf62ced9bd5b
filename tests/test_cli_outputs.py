"""``maskwork run -o``: transforms as ITK files or JSON, a sidecar beside every file, and
probability planes named by class id (issue 16)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import tifffile
from skimage import data

from maskwork.cli import main
from maskwork.core.io import sidecar_path


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Camera at 256 px (fixed) and the same turned 4 degrees and shifted (moving), as PNGs."""
    folder = tmp_path_factory.mktemp("pair")
    fixed = cv2.resize(data.camera(), (256, 256), interpolation=cv2.INTER_AREA)
    fixed_to_moving = cv2.getRotationMatrix2D((128.0, 128.0), 4.0, 1.0)
    fixed_to_moving[:, 2] += (6.5, -3.25)
    moving = cv2.warpAffine(fixed, fixed_to_moving, (256, 256), flags=cv2.INTER_CUBIC)
    cv2.imwrite(str(folder / "fixed.png"), fixed)
    cv2.imwrite(str(folder / "moving.png"), moving)
    truth = np.linalg.inv(np.vstack([fixed_to_moving, [0.0, 0.0, 1.0]]))  # moving -> fixed
    return folder / "fixed.png", folder / "moving.png", truth


def _register(pair, *outputs, model: str = "similarity") -> int:
    fixed, moving, _ = pair
    arguments = ["run", "register_features", "--image", str(fixed), "--image2", str(moving), "-p", f"model={model}"]
    for output in outputs:
        arguments += ["-o", str(output)]
    return main(arguments)


def _sidecar(path) -> dict:
    return json.loads(sidecar_path(path).read_text())


def test_a_tfm_output_is_the_itk_transform_with_a_sidecar(pair, tmp_path):
    import SimpleITK as sitk

    assert _register(pair, tmp_path / "OUT.tfm") == 0
    itk = sitk.ReadTransform(str(tmp_path / "OUT.tfm"))  # ITK maps fixed -> moving points
    truth = pair[2]
    fixed_points = np.array([[40.0, 50.0], [200.0, 90.0], [128.0, 220.0]])
    moving_points = np.array([itk.TransformPoint(tuple(point)) for point in fixed_points])
    expected = cv2.perspectiveTransform(fixed_points[None], np.linalg.inv(truth))[0]
    np.testing.assert_allclose(moving_points, expected, atol=0.3)
    sidecar = _sidecar(tmp_path / "OUT.tfm")
    assert sidecar["file"] == "OUT.tfm" and sidecar["operator"] == "register_features"
    assert sidecar["parameters"]["model"] == "similarity" and sidecar["recipe"]["steps"]
    # The warped image, which no -o named, goes beside it with its own sidecar.
    assert cv2.imread(str(tmp_path / "OUT_image.png"), cv2.IMREAD_UNCHANGED).shape == (256, 256)
    assert _sidecar(tmp_path / "OUT_image.png")["operator"] == "register_features"
    assert not (tmp_path / "OUT_transform.json").exists()  # JSON only when asked


def test_tfm_json_and_image_together_each_with_a_sidecar(pair, tmp_path):
    outputs = [tmp_path / "H.tfm", tmp_path / "H.json", tmp_path / "H.png"]
    assert _register(pair, *outputs, model="homography") == 0
    saved = json.loads((tmp_path / "H.json").read_text())
    assert saved["type"] == "homography"
    from maskwork.operators.registration.transform import Transform

    from_tfm = Transform.load_tfm(tmp_path / "H.tfm", (256, 256), (256, 256))  # a homography: a dense field
    from_json = Transform.load(tmp_path / "H.json")
    np.testing.assert_allclose(from_tfm.backward_coordinates(), from_json.backward_coordinates(), atol=1e-3)
    assert cv2.imread(str(outputs[2]), cv2.IMREAD_UNCHANGED).shape == (256, 256)
    for path in outputs:
        assert _sidecar(path)["file"] == path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in outputs]
                                                                + [p.name + ".json" for p in outputs])


def test_the_default_names_still_give_the_transform_as_json_with_a_sidecar(pair, tmp_path):
    assert _register(pair, tmp_path / "out.png") == 0
    assert json.loads((tmp_path / "out_transform.json").read_text())["type"] == "similarity"
    assert _sidecar(tmp_path / "out_transform.json")["operator"] == "register_features"
    assert _sidecar(tmp_path / "out.png")["file"] == "out.png"


def test_more_files_than_outputs_is_bad_input(pair, tmp_path, capsys):
    assert _register(pair, tmp_path / "a.png", tmp_path / "b.png") == 2
    assert "2 output files for 1 output(s) besides the transform (image)" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_upper_case_transform_suffixes_are_written_and_read_under_the_name_given(pair, tmp_path):
    import SimpleITK as sitk

    from maskwork.operators.registration.transform import Transform

    # SimpleITK itself knows .tfm and not .TFM; the person's name is kept all the same.
    outputs = [tmp_path / "OUT.PNG", tmp_path / "OUT.TFM", tmp_path / "OUT.JSON"]
    assert _register(pair, *outputs) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in outputs]
                                                                + [p.name + ".json" for p in outputs])
    truth = pair[2]
    read_back = Transform.load_tfm(tmp_path / "OUT.TFM", (256, 256), (256, 256))
    np.testing.assert_allclose(read_back.matrix, truth, atol=0.05)
    np.testing.assert_allclose(Transform.load(tmp_path / "OUT.JSON").matrix, read_back.matrix, atol=1e-6)
    with pytest.raises(RuntimeError):  # why the name alone is not handed to SimpleITK
        sitk.ReadTransform(str(tmp_path / "OUT.TFM"))


def test_an_output_named_like_another_outputs_sidecar_is_refused_before_anything_is_written(pair, tmp_path, capsys):
    assert _register(pair, tmp_path / "g.png", tmp_path / "g.png.json") == 2
    assert "two outputs would be written to" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_outputs_whose_names_differ_only_in_case_are_refused_they_are_one_file_on_windows_and_macos(
        pair, tmp_path, capsys):
    assert _register(pair, tmp_path / "g.png", tmp_path / "G.PNG.json") == 2
    assert "differ only in case" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_an_unwritable_output_says_why_in_words(pair, tmp_path, capsys):
    (tmp_path / "taken.png").write_bytes(b"a file, not a folder")
    assert _register(pair, tmp_path / "taken.png" / "out.png") == 2
    error = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'taken.png' / 'out.png'}: {tmp_path / 'taken.png'} is a file, not a folder" in error
    assert "Errno" not in error


def test_a_probabilities_sidecar_names_the_class_of_each_plane(tmp_path):
    image = np.zeros((60, 80), np.uint8)
    image[:, 30:55] = 120
    image[:, 55:] = 240
    markers = np.zeros((60, 80), np.uint8)
    markers[20:40, 5:15] = 2
    markers[20:40, 38:46] = 5
    markers[20:40, 65:75] = 7
    cv2.imwrite(str(tmp_path / "image.png"), image)
    cv2.imwrite(str(tmp_path / "markers.png"), markers)
    code = main(["run", "random_walker", "--image", str(tmp_path / "image.png"), "--markers",
                 str(tmp_path / "markers.png"), "-o", str(tmp_path / "labels.png")])
    assert code == 0
    planes = tifffile.imread(tmp_path / "labels_probabilities.tif")
    ids = _sidecar(tmp_path / "labels_probabilities.tif")["plane_class_ids"]
    assert ids == [2, 5, 7] and planes.shape == (60, 80, 3)
    # Each plane is the probability of the class its id names: highest on that class's band.
    for plane, (start, stop) in enumerate([(0, 30), (30, 55), (55, 80)]):
        assert planes[:, start:stop, plane].mean() > 0.9
    assert "plane_class_ids" not in _sidecar(tmp_path / "labels.png")
