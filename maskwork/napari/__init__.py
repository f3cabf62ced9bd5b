"""The napari plugin: every registered operator as a dock widget, and the window's bridge.

The ``napari.manifest`` entry point names ``napari.yaml`` in this package; napari imports
:mod:`maskwork.napari.widgets` only when a widget is opened. maskwork itself never imports
this package at start-up (napari loads lazily, through :mod:`maskwork.napari.bridge`).
"""
