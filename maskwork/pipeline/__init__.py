"""The Qt-free run pipeline shared by every front-end: run sessions, recipes and batch.

Imports point one way: ``core`` <- ``operators`` <- ``pipeline`` <- front-ends (``app``,
``widgets``, ``napari``, ``cli``). Nothing here imports Qt, pyqtgraph or napari.
"""
