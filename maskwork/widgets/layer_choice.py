"""Combo boxes that choose a layer: filled again when layers come and go, keeping the choice."""

from __future__ import annotations

from typing import Callable, Sequence

from PySide6.QtWidgets import QComboBox

from maskwork.core.layers import Layer


def fill_layer_combo(combo: QComboBox, layers: Sequence[Layer], allowed: Callable[[Layer], bool] = lambda layer: True,
                     default: int = 0) -> Layer | None:
    """Fill ``combo`` with ``layers`` (their names, the layer as data) without signals.

    The previous choice stays if it is still listed and ``allowed``; otherwise the last
    allowed layer at or before index ``default`` is chosen (the first allowed one when
    none is before it). Returns the chosen layer.
    """
    previous = combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    for layer in layers:
        combo.addItem(layer.name, layer)
    candidates = [i for i, layer in enumerate(layers) if allowed(layer)]
    index = next((i for i in candidates if layers[i] is previous),
                 max((i for i in candidates if i <= default), default=candidates[0] if candidates else 0))
    combo.setCurrentIndex(index)
    combo.blockSignals(False)
    return combo.currentData()
