"""Fixtures for driving the real main window like a person."""

import numpy as np
import pytest
from skimage import data, draw

from maskwork.core import io


def composite_photo(rows=240, cols=320):
    """A cat photo inside an ellipse on a brick-wall photo, and that ellipse as truth."""
    wall = data.brick()[:rows, :cols]
    background = np.stack([wall, (wall * 0.8).astype(np.uint8), (wall * 0.6).astype(np.uint8)], axis=2)
    cat = data.chelsea()[:rows, 60 : 60 + cols]
    truth = np.zeros((rows, cols), bool)
    rr, cc = draw.ellipse(rows // 2, cols // 2, rows * 0.3, cols * 0.28, shape=truth.shape)
    truth[rr, cc] = True
    image = background.copy()
    image[truth] = cat[truth]
    return image, truth


@pytest.fixture
def photo(tmp_path):
    """(path, image, truth mask) of the composite photo saved as PNG."""
    image, truth = composite_photo()
    path = tmp_path / "cat_on_wall.png"
    io.write_image(path, image)
    return path, image, truth


@pytest.fixture
def window(qtbot, monkeypatch):
    """The real main window, shown; questions are answered 'yes' and unsaved work is
    discarded when asked, unless a test says otherwise."""
    from PySide6.QtWidgets import QMessageBox

    from maskwork.app.application import create_application
    from maskwork.app.main_window import MainWindow

    create_application()
    win = MainWindow()
    monkeypatch.setattr(win, "ask", lambda title, question: True)
    monkeypatch.setattr(win, "ask_to_save", lambda: QMessageBox.StandardButton.Discard)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.runner.cancel()
    from maskwork.widgets.workers import stop_all_workers

    stop_all_workers()
