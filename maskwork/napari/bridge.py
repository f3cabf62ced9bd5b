"""Open maskwork layers in napari, inside the running maskwork process.

The window calls :func:`open_in_napari` lazily (napari takes seconds to import), so
napari never loads at start-up. napari reaches Qt through qtpy, which picks the binding
already imported (PySide6 here) and reuses the running QApplication: one event loop
drives both windows.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from maskwork.core.layers import Layer, LayerKind

#: napari's blending for maskwork's blend modes it has (napari has no screen, difference
#: or lighten: those layers draw translucent there).
NAPARI_BLENDING = {"normal": "translucent", "additive": "additive", "multiply": "multiplicative",
                   "darken": "minimum"}


def _pin_qt_binding() -> None:
    """Make qtpy (napari's Qt layer) use the binding maskwork already runs on.

    qtpy prefers an already imported binding, but an explicit ``QT_API`` naming another
    one would load a second Qt into the process, which crashes; within maskwork the
    binding is always PySide6.
    """
    if "PySide6" in sys.modules and "qtpy" not in sys.modules:
        os.environ["QT_API"] = "pyside6"


def open_in_napari(layers: Iterable[Layer], viewer=None):
    """Show maskwork layers in a napari viewer, bottom layer first.

    Parameters
    ----------
    layers : iterable of maskwork.core.layers.Layer
        Usually a whole :class:`~maskwork.core.layers.LayerStack`. Images become Image
        layers (RGB when they have 3 or 4 channels, with their colour map and contrast
        limits); labels, markers and masks become Labels layers in maskwork's label
        colours (a mask in its own colour), as copies (painting in napari leaves the
        maskwork document alone). Names, visibility, opacity, order and the blend modes
        napari has (:data:`NAPARI_BLENDING`; the others draw translucent) are kept; other
        channel counts give one layer per channel. Preview layers are transient and left
        out.
    viewer : napari.Viewer, optional
        An open viewer to add the layers to; a new one is made when omitted.

    Returns
    -------
    napari.Viewer
        The viewer holding the layers.
    """
    _pin_qt_binding()
    import napari
    from napari.utils.colormaps import AVAILABLE_COLORMAPS

    from maskwork.napari.convert import label_colormap, mask_colormap

    if viewer is None:
        viewer = napari.Viewer(title="maskwork layers")
    for layer in layers:
        if layer.kind is LayerKind.PREVIEW:
            continue
        data = layer.data
        common = {"visible": layer.visible, "opacity": layer.opacity,
                  "blending": NAPARI_BLENDING.get(layer.blend, "translucent")}
        metadata = {"maskwork_kind": layer.kind.value, **layer.metadata}
        if layer.kind is not LayerKind.IMAGE:
            # A copy: napari paints labels in place, which would change the document behind
            # its history's back.
            colormap = mask_colormap(layer.colormap) if layer.kind is LayerKind.MASK else label_colormap(data)
            viewer.add_labels(data.copy(), name=layer.name, colormap=colormap, metadata=metadata, **common)
        elif data.ndim == 3 and data.shape[2] in (3, 4):
            viewer.add_image(data, name=layer.name, rgb=True, metadata=metadata, **common)
        elif data.ndim == 2:
            colormap = layer.colormap if layer.colormap in AVAILABLE_COLORMAPS else "gray"
            viewer.add_image(data, name=layer.name, colormap=colormap, contrast_limits=layer.contrast_limits,
                             metadata=metadata, **common)
        else:  # neither gray nor RGB(A): one napari layer per channel, none dropped
            names = [f"{layer.name} [{c}]" for c in range(data.shape[2])]
            viewer.add_image(data, channel_axis=2, name=names, **common)
    return viewer
