"""File > Open in napari where napari cannot be imported (it runs for real in tests/napari)."""

import sys


def test_without_napari_the_action_says_how_to_install_it(window, photo, monkeypatch):
    window.napari_bridge.action_open_in_napari.trigger()
    assert "Open an image first" in window.last_message_box.text()

    path, image, truth = photo
    window.open_paths([path])
    monkeypatch.setitem(sys.modules, "napari", None)  # makes `import napari` raise ImportError
    window.napari_bridge.action_open_in_napari.trigger()
    assert window.napari_bridge.viewer is None
    # maskwork-core's extra: the desktop application does not forward napari
    assert "pip install 'maskwork-core[napari]'" in window.last_message_box.text()
    assert len(window.document.layers) == 1  # nothing lost
