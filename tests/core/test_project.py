"""Project files: every pixel, property, prompt, parameter, recorded step and undo step
comes back; writes are atomic; damaged files are refused without touching the document."""

import os
import stat
import zipfile

import numpy as np
import pytest
from skimage import data

from maskwork.core import project
from maskwork.core.document import Document
from maskwork.core.history import ReplaceDataAtom
from maskwork.core.layers import Layer, LayerKind
from maskwork.core.project import ProjectError, capture, read_project, restore, stale_temporary_files, write_project

IMAGES = {
    "8-bit RGB": data.astronaut()[:96, :128],
    "16-bit": (data.camera()[:96, :128].astype(np.uint16) * 257 + 3),
    "float": np.linspace(-1.5, 2.5, 96 * 128, dtype=np.float32).reshape(96, 128),
}


def layer_state(layer):
    """Everything a layer carries, for comparing before and after."""
    return (layer.name, layer.kind, layer.visible, layer.opacity, layer.colormap, layer.contrast_limits,
            layer.metadata, layer.data.dtype, layer.data.copy())


def document_state(document):
    return [layer_state(layer) for layer in document.layers], document.rect, document.points


def assert_same_state(restored, original):
    (layers_a, rect_a, points_a), (layers_b, rect_b, points_b) = restored, original
    assert (rect_a, points_a) == (rect_b, points_b)
    assert len(layers_a) == len(layers_b)
    for a, b in zip(layers_a, layers_b):
        assert a[:-1] == b[:-1]
        np.testing.assert_array_equal(a[-1], b[-1])


def working_session(image):
    """A document with an image, labels, markers and a mask, prompts, landmarks and every
    kind of undo step, some of them undone."""
    document = Document()
    document.add_layer(Layer(image, LayerKind.IMAGE, "photo", metadata={"source": "/data/photo.tif"}))
    rows, cols = image.shape[:2]
    markers = document.new_layer(LayerKind.MARKERS, "scribbles")
    with document.history.group("Brush stroke"):
        document.write(markers, (slice(10, 14), slice(5, 60)), np.ones((4, 55), np.uint8))
        document.write(markers, (slice(70, 74), slice(5, 60)), np.full((4, 55), 2, np.uint8))
    labels = np.zeros((rows, cols), np.uint16)
    labels[20:40, 30:50], labels[50:60, 60:90] = 1, 700
    document.add_layer(Layer(labels, LayerKind.LABELS, "objects", opacity=0.4,
                             metadata={"operator": "watershed", "parameters": {"compactness": 0.01, "method": "skimage"}}),
                       step="Watershed")
    mask = document.add_layer(Layer(labels > 0, LayerKind.MASK, "mask", visible=False))
    document.set_rect((4, 6, 80, 50))
    document.add_point(12.0, 20.0, 1)
    document.add_point(40.0, 41.0, 0)
    document.add_point(30.5, 31.5, 3, "Landmark 3 fixed")
    document.add_point(33.0, 36.0, -3, "Landmark 3 moving")
    document.set_property(document.layers[0], "contrast_limits", (2.0, 200.0) if image.dtype == np.uint8 else (-1.0, 2.0))
    document.set_property(document.layers[0], "colormap", "viridis")
    document.set_property(mask, "name", "object mask")
    document.move_layer(3, 1)
    # An operator result that replaced a layer's data (the dtype changes, as Apply may).
    old = labels.copy()
    with document.history.group("Relabel"):
        document.history.record(ReplaceDataAtom(document.layers.by_name("objects"), document.layers.by_name("objects").data))
        document.layers.by_name("objects").data = old * 2
    document.remove_layer(document.layers.by_name("object mask"))
    document.history.undo()  # the deleted mask waits to be deleted again
    document.history.undo()  # the relabel waits to be redone
    return document


@pytest.fixture(params=list(IMAGES))
def session(request):
    return working_session(IMAGES[request.param])


def all_states(document):
    """The state at every point of the history, newest first, and the history's names."""
    history = document.history
    names = history.undo_names, history.redo_names
    states = []
    while True:
        states.append(document_state(document))
        if not history.undo():
            break
    history.jump_to(len(states) - 1)
    return names, states


def test_round_trip_keeps_every_pixel_property_prompt_and_undo_step(session, tmp_path):
    recording = [{"operator": "grabcut", "params": {"iterations": np.int64(5), "margin": 0.15},
                  "inputs": {"image": session.layers[0].data, "rect": (4, 6, 80, 50), "markers": np.eye(3, dtype=np.uint8)},
                  "sources": {"image": session.layers[0], "markers": session.layers.by_name("scribbles")},
                  "outputs": [session.layers.by_name("objects")]}]
    names, states = all_states(session)
    current = document_state(session)
    path = write_project(capture(session, source="/data/photo.tif", saved_as="/work/a.maskwork", operator="grabcut",
                                 parameters={"iterations": 5, "margin": 0.15}, recording=recording),
                         tmp_path / "session.maskwork")

    reopened = Document()
    restored = restore(read_project(path), reopened)

    assert_same_state(document_state(reopened), current)
    assert (reopened.history.undo_names, reopened.history.redo_names) == names
    assert not reopened.history.is_modified
    assert reopened.layers.selected.name == session.layers.selected.name
    assert (restored.source, restored.operator, restored.parameters) == ("/data/photo.tif", "grabcut",
                                                                         {"iterations": 5, "margin": 0.15})
    assert restored.dropped_steps == 0 and restored.saved_as == "/work/a.maskwork"
    step = restored.recording[0]
    assert step["params"] == {"iterations": 5, "margin": 0.15} and step["inputs"]["rect"] == (4, 6, 80, 50)
    assert step["sources"]["image"] is reopened.layers[0] and step["outputs"][0] is reopened.layers.by_name("objects")
    assert step["inputs"]["image"] is reopened.layers[0].data, "an array the document shares is stored once"
    np.testing.assert_array_equal(step["inputs"]["markers"], np.eye(3))
    # Undo walks back through the same states as before the save, and redo forward again.
    for state in states:
        assert_same_state(document_state(reopened), state)
        reopened.history.undo()
    reopened.history.jump_to(len(states) - 1 + len(names[1]))
    assert reopened.history.redo_names == [] and len(reopened.layers.by_name("objects").data) == 96
    assert reopened.layers.by_name("object mask") is None, "the redone delete removed the mask again"


def test_images_are_stored_as_they_are_and_seed_layers_deflated(tmp_path):
    document = working_session(IMAGES["8-bit RGB"])
    written = write_project(capture(document), tmp_path / "p.maskwork")
    with zipfile.ZipFile(written) as archive:
        manifest = read_project(written).manifest
        kinds = {layer["data"]: layer["kind"] for layer in manifest["layers"]}
        methods = {info.filename[len("arrays/"):-4]: info.compress_type for info in archive.infolist()
                   if info.filename.startswith("arrays/")}
    assert manifest["format"] == "maskwork-project" and manifest["version"] == project.FORMAT_VERSION
    for name, kind in kinds.items():
        expected = zipfile.ZIP_STORED if kind == "image" else zipfile.ZIP_DEFLATED
        assert methods[name] == expected, kind


def test_history_over_the_limit_drops_the_oldest_steps(tmp_path):
    document = Document()
    document.add_layer(Layer(np.zeros((100, 100), np.uint8), LayerKind.IMAGE, "image"))
    markers = document.new_layer(LayerKind.MARKERS)
    for index in range(6):  # each stroke's patch holds 100 x 100 old bytes
        document.write(markers, (slice(None), slice(None)), np.full((100, 100), index + 1, np.uint8), f"Stroke {index}")
    limit = 3 * 100 * 100 + 500
    path = write_project(capture(document, history_limit=limit), tmp_path / "p.maskwork")

    reopened = Document()
    restored = restore(read_project(path), reopened)
    assert reopened.history.undo_names == ["Stroke 3", "Stroke 4", "Stroke 5"]
    assert restored.dropped_steps == 5  # the image, the new layer and three strokes
    reopened.history.jump_to(0)
    assert (reopened.layers[1].data == 3).all(), "the oldest kept step undoes to the state before it"


def test_the_capture_is_not_changed_by_later_painting(tmp_path):
    document = working_session(IMAGES["16-bit"])
    markers = document.layers.by_name("scribbles")
    before = markers.data.copy()
    captured = capture(document)
    document.write(markers, (slice(0, 50), slice(0, 50)), np.full((50, 50), 9, np.uint8), "Later stroke")
    reopened = Document()
    restore(read_project(write_project(captured, tmp_path / "p.maskwork")), reopened)
    np.testing.assert_array_equal(reopened.layers.by_name("scribbles").data, before)


def test_the_capture_lends_paintable_layers_and_a_stroke_meanwhile_copies_once():
    """No 12 MP copy on the UI thread at each save: the layer copies only if painted."""
    document = working_session(IMAGES["16-bit"])
    markers = document.layers.by_name("scribbles")
    lent = markers.data
    captured = capture(document)
    assert any(array is lent for array in captured.arrays.values()), "captured without a copy"
    stroke = np.full((10, 10), 7, np.uint8)
    document.write(markers, (slice(0, 10), slice(0, 10)), stroke, "Stroke during the save")
    painted = markers.data
    assert painted is not lent and (lent[:10, :10] != 7).any(), "the lent array stays as captured"
    document.write(markers, (slice(20, 30), slice(0, 10)), stroke, "Another stroke")
    assert markers.data is painted, "one copy per loan"
    captured.give_back()
    capture(document).give_back()
    document.write(markers, (slice(40, 50), slice(0, 10)), stroke, "After the save")
    assert markers.data is painted, "given back: painted in place again"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "p.maskwork"
    document = working_session(IMAGES["float"])
    write_project(capture(document), path)
    old_bytes = path.read_bytes()

    def disk_full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(project._CountingWriter, "write", disk_full)
    with pytest.raises(OSError, match="No space") as raised:
        write_project(capture(document), path)
    assert path.read_bytes() == old_bytes and not stale_temporary_files(path)
    assert str(raised.value) == f"cannot write {path}: No space left on device", "the file asked for, never the temporary"


def test_a_read_only_folder_is_named_with_the_project_not_its_temporary_file(tmp_path, monkeypatch):
    def read_only_folder(name, *args):  # as the system refuses it; root would be let through
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(project.os, "open", read_only_folder)
    with pytest.raises(OSError) as raised:
        write_project(capture(working_session(IMAGES["float"])), tmp_path / "p.maskwork")
    assert str(raised.value) == f"cannot write {tmp_path / 'p.maskwork'}: Permission denied"


def test_a_project_file_gets_the_permissions_of_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_project(capture(working_session(IMAGES["float"])), tmp_path / "p.maskwork")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_progress_is_reported_up_to_the_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(project, "WRITE_CHUNK_BYTES", 1024)  # a small layer in many slices
    fractions = []
    write_project(capture(working_session(IMAGES["8-bit RGB"])), tmp_path / "p.maskwork", fractions.append)
    assert fractions == sorted(fractions) and fractions[-1] > 0.99 and len(fractions) > 10


@pytest.mark.parametrize("content, message", [
    (b"not a zip at all", "damaged"),
    (None, "no manifest.json"),
    ({"format": "something-else", "version": 1}, "not a maskwork project"),
    ({"format": "maskwork-project", "version": 99}, "newer maskwork"),
    ({"format": "maskwork-project", "version": "1"}, "damaged: its project format version is '1'"),
    ({"format": "maskwork-project", "version": True}, "damaged"),
    ({"format": "maskwork-project"}, "damaged: its project format version is None"),
])
def test_files_that_are_no_project_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.maskwork"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("other.txt", "hello")
            if content is not None:
                import json

                archive.writestr("manifest.json", json.dumps(content))
    with pytest.raises(ProjectError, match=message):
        read_project(path)


def test_a_damaged_project_leaves_the_document_as_it_was(tmp_path):
    path = write_project(capture(working_session(IMAGES["float"])), tmp_path / "p.maskwork")
    loaded = read_project(path)
    del loaded.arrays[loaded.manifest["layers"][-1]["data"]]
    document = working_session(IMAGES["16-bit"])
    before = document_state(document)
    with pytest.raises(ProjectError, match="missing"):
        restore(loaded, document)
    assert_same_state(document_state(document), before)


def test_a_project_with_a_layer_the_size_of_no_image_is_refused_and_the_document_kept(tmp_path):
    document = Document()
    document.add_layer(Layer(np.zeros((24, 32), np.uint8), "image", "photo"))
    document.new_layer("markers")
    project = capture(document)
    project.manifest["layers"][1]["data"] = "small"
    project.arrays["small"] = np.zeros((10, 10), np.uint8)
    kept = Document()
    kept.add_layer(Layer(np.ones((5, 5), np.uint8), "image", "open"))
    with pytest.raises(ProjectError, match="10x10, the size of no image"):
        restore(project, kept)
    assert [layer.name for layer in kept.layers] == ["open"]
