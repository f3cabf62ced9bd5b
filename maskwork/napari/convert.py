"""Between napari layers and operator inputs and results (no Qt).

Every napari layer has its own data-to-world transform (scale, translate, ...), so
geometry (box corners, points) is converted through world coordinates into the pixel grid
of the image the operator works on; a box drawn on a Shapes layer of another scale still
lands on the right pixels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from napari.layers import Image, Labels, Layer, Points, Shapes
from napari.utils.colormaps import DirectLabelColormap

from maskwork.core.colors import label_colors, mask_color
from maskwork.operators.context import InputError, Result
from maskwork.operators.registry import OperatorSpec
from maskwork.pipeline.session import OutputLayer, result_layers

#: The napari layer type each operator input is taken from.
INPUT_LAYER_TYPES: dict[str, type[Layer]] = {
    "image": Image,
    "image2": Image,
    "markers": Labels,
    "mask": Labels,
    "rect": Shapes,
    "points": Points,
}

#: Metadata key of layers the plugin adds: the id of the operator that made them.
SOURCE_KEY = "maskwork_operator"
#: Metadata key marking the transient preview layer of a running operator.
PREVIEW_KEY = "maskwork_preview"
#: Metadata key under which a registration result keeps its Transform.
TRANSFORM_KEY = "maskwork_transform"

#: napari's layer data tuple: (data, layer keyword arguments, layer type).
LayerData = tuple[Any, dict, str]

# Labels below this value get maskwork's colours from one table.
_COLOR_TABLE_SIZE = 256
# Labels outside the table (negative, or painted above it later): a visible neutral grey.
_UNLISTED_LABEL_COLOR = np.array([0.66, 0.66, 0.66, 1.0])


def is_preview(layer: Layer) -> bool:
    """Whether ``layer`` is a plugin's transient preview (never an operator input)."""
    return bool(layer.metadata.get(PREVIEW_KEY))


def current_plane(layer: Image | Labels, dims_point) -> np.ndarray:
    """The 2-D (row, col[, channel]) plane of ``layer`` that the viewer shows now.

    Parameters
    ----------
    layer : napari.layers.Image or napari.layers.Labels
        A 2-D, 2-D RGB or n-D layer (multiscale layers give their full-resolution level).
    dims_point : sequence of float
        ``viewer.dims.point``: the world position of the sliders.
    """
    data = layer.data[0] if layer.multiscale else layer.data
    index = _shown_index(layer, dims_point)
    return np.asarray(data[index] if index else data)


def _shown_index(layer: Layer, dims_point) -> tuple[int, ...]:
    """The indices along ``layer``'s leading (non-displayed) axes of the plane shown now."""
    leading = layer.ndim - 2
    if leading <= 0:
        return ()
    shape = (layer.data[0] if layer.multiscale else layer.data).shape
    position = layer.world_to_data(dims_point)
    return tuple(int(np.clip(round(float(p)), 0, size - 1)) for p, size in zip(position[:leading], shape))


def plane_number(layer: Layer, dims_point) -> int | None:
    """The index along the first leading axis of the plane of ``layer`` shown now, for a
    stack of one leading axis; None for a 2-D layer (or more leading axes: no one number)."""
    index = _shown_index(layer, dims_point)
    return index[0] if len(index) == 1 else None


def plane_placement(layer: Layer) -> dict:
    """Keyword arguments that put a 2-D result on ``layer``'s shown plane: the last two
    axes' scale and translate, and their rotation, shear and affine where not plain (the
    mask of a rotated image was drawn unrotated)."""
    placement = {"scale": tuple(layer.scale[-2:]), "translate": tuple(layer.translate[-2:])}
    rotate = np.asarray(layer.rotate)[-2:, -2:]
    if not np.allclose(rotate, np.eye(2)):
        placement["rotate"] = rotate
    shear = np.asarray(layer.shear)
    if shear.size and not np.isclose(shear[-1], 0.0):
        placement["shear"] = [float(shear[-1])]  # the last pair of axes' entry
    affine = np.asarray(layer.affine.affine_matrix)
    plane = np.eye(3)
    plane[:2, :2], plane[:2, 2] = affine[-3:-1, -3:-1], affine[-3:-1, -1]
    if not np.allclose(plane, np.eye(3)):
        placement["affine"] = plane
    return placement


def _on_plane(layer: Layer, coords, dims_point) -> bool:
    """Whether a point of ``layer`` (data coordinates) lies on the plane shown now: its
    leading world coordinates within half a step of the sliders' (a click on slice 3 is
    no prompt on slice 7)."""
    world = np.asarray(layer.data_to_world(np.asarray(coords, float)), float)
    leading = len(world) - 2
    if leading <= 0 or not len(dims_point):
        return True
    shown = np.asarray(dims_point, float)[-len(world):][:leading]
    step = np.abs(np.asarray(layer.scale, float)[:leading])
    return bool(np.all(np.abs(world[:leading] - shown) <= step / 2))


def _to_pixel(source: Layer, target: Layer, coords) -> tuple[float, float]:
    """``coords`` in ``source``'s data space as (row, col) in ``target``'s pixel grid."""
    world = source.data_to_world(np.asarray(coords, float))
    row, col = target.world_to_data(world)[-2:]
    return float(row), float(col)


def rect_from_shapes(shapes: Shapes, image: Layer, shape: tuple[int, int], dims_point=()) -> tuple[int, int, int, int]:
    """The first rectangle of ``shapes`` as an ``(x, y, w, h)`` box on ``image``'s pixels.

    A napari pixel ``[r, c]`` covers ``r - 0.5 .. r + 0.5``, so the box holds the pixels
    whose centres lie inside the rectangle; parts outside the image are cut off.

    Parameters
    ----------
    shapes : napari.layers.Shapes
        Holds the box (other shape types are ignored; a rotated rectangle gives its
        bounding box).
    image : napari.layers.Layer
        The layer whose pixel grid the box is for.
    shape : tuple of int
        ``(rows, cols)`` of that image.
    dims_point : sequence of float, optional
        ``viewer.dims.point``: in a stack, only a rectangle on the plane shown counts.

    Raises
    ------
    InputError
        When the layer holds no rectangle (on that plane) or the rectangle misses the image.
    """
    index = next((i for i, kind in enumerate(shapes.shape_type)
                  if kind == "rectangle" and _on_plane(shapes, shapes.data[i][0], dims_point)), None)
    if index is None:
        raise InputError(f"the Shapes layer {shapes.name!r} holds no rectangle; draw a box with its rectangle tool")
    corners = np.array([_to_pixel(shapes, image, vertex) for vertex in shapes.data[index]])
    rows, cols = shape
    top, left = max(0, math.ceil(corners[:, 0].min())), max(0, math.ceil(corners[:, 1].min()))
    bottom, right = min(rows - 1, math.floor(corners[:, 0].max())), min(cols - 1, math.floor(corners[:, 1].max()))
    if bottom < top or right < left:
        raise InputError(f"the rectangle of {shapes.name!r} lies outside the image {image.name!r}")
    return left, top, right - left + 1, bottom - top + 1


def point_labels(points: Points) -> np.ndarray | None:
    """The numeric ``label`` feature of a Points layer, or None when it has none.

    Raises
    ------
    InputError
        When a ``label`` feature exists but holds something other than numbers.
    """
    if "label" not in points.features.columns:
        return None
    try:
        return np.asarray(points.features["label"], dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"the 'label' feature of {points.name!r} must hold numbers") from None


def prompt_points(points: Points, image: Layer, dims_point=()) -> list[tuple[float, float, int]]:
    """Point prompts ``(row, col, label)`` on ``image``'s pixels: label 1 positive, 0 negative.

    Every point is positive unless the layer has a ``label`` feature, whose values above
    zero are positive and the rest negative. In a stack only the points on the plane
    shown (``dims_point``, ``viewer.dims.point``) count.
    """
    labels = point_labels(points)
    out = []
    for i, coords in enumerate(points.data):
        if not _on_plane(points, coords, dims_point):
            continue
        row, col = _to_pixel(points, image, coords)
        out.append((row, col, 1 if labels is None or labels[i] > 0 else 0))
    return out


def landmark_points(points: Points, fixed: Layer, moving: Layer, dims_point=()) -> list[tuple[float, float, int]]:
    """Landmarks ``(row, col, label)``: ``+k`` on the fixed image, ``-k`` on the moving one.

    The convention of :mod:`maskwork.operators.registration.landmarks`; the layer's
    ``label`` feature holds the signed numbers, and each point is converted into the
    pixel grid of the image its sign names (the two images may sit at different places
    in the viewer).

    Raises
    ------
    InputError
        When the layer has no ``label`` feature.
    """
    labels = point_labels(points)
    if labels is None:
        raise InputError(
            f"landmarks need a 'label' feature on {points.name!r}: +k for landmark k on the fixed image, "
            "-k for the same landmark on the moving image (e.g. layer.feature_defaults['label'] = -1 before clicking)"
        )
    out = []
    for coords, label in zip(points.data, labels):
        if not _on_plane(points, coords, dims_point):
            continue  # a landmark of another plane of a stack
        row, col = _to_pixel(points, fixed if label > 0 else moving, coords)
        out.append((row, col, int(label)))
    return out


def label_colormap(data: np.ndarray) -> DirectLabelColormap | None:
    """maskwork's label colours (1 green foreground, 2 red background, ...) for napari.

    Returns
    -------
    DirectLabelColormap or None
        A table covering every label below 256, also those a person may paint later; None
        when ``data`` holds larger ids (object ids, superpixels), for which napari's own
        cyclic colours suit better than a table of thousands of entries.
    """
    if int(np.max(data, initial=0)) >= _COLOR_TABLE_SIZE:
        return None
    rgba = label_colors(_COLOR_TABLE_SIZE) / 255.0
    colors: dict = {label: color for label, color in enumerate(rgba)}
    colors[None] = _UNLISTED_LABEL_COLOR
    return DirectLabelColormap(color_dict=colors)


def mask_colormap(color_name: str) -> DirectLabelColormap:
    """A mask layer's colour (its ``Layer.colormap``, a name of
    :data:`~maskwork.core.colors.MASK_COLORS`) for every pixel of the mask, as the
    maskwork window draws it: two masks in sky blue and yellow stay told apart in napari."""
    rgba = np.array([*mask_color(color_name), 255]) / 255.0
    return DirectLabelColormap(color_dict={0: np.zeros(4), None: rgba})


def result_layer_data(spec: OperatorSpec, result: Result, inputs: dict, placement: dict) -> list[LayerData]:
    """napari layer data tuples for an operator's outputs (see :func:`output_layer_data`).

    Parameters
    ----------
    spec : OperatorSpec
        The operator that ran (its title names the layers).
    result : Result
        What it returned.
    inputs : dict
        The inputs it ran on: a transform warps ``image2``, probabilities take class ids
        from ``markers``.
    placement : dict
        Keyword arguments that put the layers on the input image (``scale``, ``translate``).
    """
    return output_layer_data(spec, result_layers(spec, result, inputs), placement)


def output_layer_data(spec: OperatorSpec, layers: list[OutputLayer], placement: dict) -> list[LayerData]:
    """napari layer data tuples for the session's output layers, the main output last (on top).

    mask -> Labels (0/1), labels -> Labels, probability planes -> hidden Images, image ->
    Image (RGB when it has 3 or 4 channels). The layers of a registration keep its
    :class:`~maskwork.operators.registration.transform.Transform` in
    ``metadata[TRANSFORM_KEY]``.
    """
    tuples: list[tuple[bool, LayerData]] = []
    for layer in layers:
        metadata = {SOURCE_KEY: spec.id}
        if layer.transform is not None:
            metadata[TRANSFORM_KEY] = layer.transform
        meta = {**placement, "name": layer.name, "metadata": metadata}
        if layer.kind in ("mask", "labels"):
            item = (layer.data, {**meta, "colormap": label_colormap(layer.data)}, "labels")
        elif layer.output == "probabilities":
            item = (layer.data, {**meta, "colormap": "magma", "contrast_limits": (0.0, 1.0), "visible": False}, "image")
        else:
            item = image_layer_data(layer.data, meta)
        tuples.append((layer.output == spec.outputs[0], item))
    return [item for main, item in tuples if not main] + [item for main, item in tuples if main]


def image_layer_data(data: np.ndarray, meta: dict) -> LayerData:
    """An Image layer tuple, RGB(A) when the last axis holds 3 or 4 channels."""
    rgb = data.ndim == 3 and data.shape[2] in (3, 4)
    return data, {**meta, "rgb": rgb}, "image"
