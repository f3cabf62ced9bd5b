"""Export transform in the window writes the transform (JSON or ITK .tfm) and its sidecar (issue 16)."""

import json

import numpy as np
import SimpleITK as sitk

from maskwork.core.io import sidecar_path
from maskwork.core.layers import Layer, LayerKind
from maskwork.operators.registration.transform import Transform


def test_an_exported_transform_gets_a_sidecar_naming_the_registration(window, tmp_path):
    image = np.zeros((40, 50), np.uint8)
    window.document.add_layer(Layer(image, LayerKind.IMAGE, "fixed"))
    transform = Transform("similarity", np.array([[0.99, -0.05, 4.5], [0.05, 0.99, -2.0], [0, 0, 1.0]]), (40, 50), (40, 50))
    parameters = {"model": "similarity", "detector": "sift"}
    warped = Layer(image, LayerKind.IMAGE, "warped",
                   metadata={"operator": "register_features", "parameters": parameters, "transform": transform})
    window.document.add_layer(warped)
    window.document.layers.selected = warped

    for name in ("t.tfm", "t.json"):
        saved = window.transforms.export_transform(tmp_path / name)
        assert saved == tmp_path / name
        sidecar = json.loads(sidecar_path(saved).read_text())
        assert sidecar["file"] == name
        assert sidecar["operator"] == "register_features" and sidecar["parameters"] == parameters
    itk = sitk.ReadTransform(str(tmp_path / "t.tfm"))  # ITK: fixed -> moving
    np.testing.assert_allclose(itk.TransformPoint((10.0, 20.0)), transform.inverse().map_points([[10.0, 20.0]])[0])
    assert Transform.load(tmp_path / "t.json").kind == "similarity"
