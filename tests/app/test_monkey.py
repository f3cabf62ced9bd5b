"""A seeded random person in the real window: thousands of menu actions, mouse strokes,
operator runs (deep-learning ones too, with torch loaded), exports and file opens, with no
exception and bounded memory (issue 15).

``MASKWORK_MONKEY_ACTIONS`` and ``MASKWORK_MONKEY_SEED`` make a longer or another run
(``MASKWORK_MONKEY_ACTIONS=10000`` takes about 3 minutes); each run prints its resident
memory after the warm-up, at the baseline and every 1,000 actions.
"""

import os
import random
from collections import deque

import numpy as np
import psutil
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication, QDoubleSpinBox, QLineEdit, QMessageBox, QSpinBox, QWidget

from maskwork.app.application import collect_garbage_when_idle
from maskwork.core import io
from maskwork.operators import get
from maskwork.widgets.canvas import Tool

from window_driver import click, drag

ACTIONS = int(os.environ.get("MASKWORK_MONKEY_ACTIONS", 2000))
SEED = int(os.environ.get("MASKWORK_MONKEY_SEED", 15))
#: Actions before the memory baseline (after each operator ran once): the undo history
#: fills up and the caches of Qt and the libraries settle.
WARM_UP_ACTIONS = 500
#: Resident memory may grow this much after the warm-up, whatever the number of actions.
#: On 80 x 64 images every layer is 15 KB and the history's 200 steps hold under 5 MB;
#: 2,000 leaked message boxes were 313 MB.
MEMORY_BOUND_MB = 60
#: Operators that need no optional package and take milliseconds on a small image.
CHEAP_OPERATORS = (
    "threshold", "multi_otsu", "hysteresis_threshold", "gamma", "levels", "clahe", "unsharp_mask", "invert",
    "fill_holes", "keep_largest", "connected_components", "morphology", "grow_shrink", "remove_small_objects",
    "clean_labels",
    "superpixels", "grabcut", "watershed", "random_walker", "split_objects",
)
#: Deep-learning operators with the settings a person picks for a quick result on a small
#: image (torch stays loaded, and its memory is measured with the rest): the scribble CNN
#: trains a few steps on small crops of a narrow network and predicts in 64-pixel tiles;
#: the model file (made by the test) runs whole or in tiles.
DEEP_LEARNING_SETTINGS = {
    "scribble_cnn": {"steps": 4, "resume_steps": 2, "batch_size": 2, "crop_size": 32, "width": 4, "tile_size": 64},
    "run_model": {},
}
#: Tile sizes the person tries for the model file (0: the whole image at once).
MODEL_TILE_SIZES = (0, 48)
PAINT_TOOLS = (Tool.BRUSH, Tool.ERASER)
EXPORTS = {"image": "png", "mask": "png", "labels": "tif", "labels_color": "png", "cutout": "png"}


def small_images(folder):
    """Two images of the same size and one of another size, as files."""
    rng = np.random.default_rng(SEED)
    rows, cols = np.mgrid[:64, :80]
    disc = ((rows - 30) ** 2 + (cols - 42) ** 2 < 18**2).astype(np.uint8)
    photo = np.stack([disc * 150 + 40, disc * 90 + 60, 200 - disc * 120], axis=2).astype(np.uint8)
    photo = np.clip(photo + rng.integers(0, 30, photo.shape), 0, 255).astype(np.uint8)
    paths = {"photo": folder / "photo.png", "gray": folder / "gray.tif", "other size": folder / "other.png"}
    io.write_image(paths["photo"], photo)
    io.write_image(paths["gray"], photo.mean(axis=2).astype(np.uint16) * 200)
    io.write_image(paths["other size"], photo[:40, :50])
    return paths


class Monkey:
    """Random actions in ``window``, each one what a person can do with the mouse and menus."""

    def __init__(self, window, qtbot, folder, seed):
        self.window, self.qtbot, self.folder = window, qtbot, folder
        self.rng = random.Random(seed)
        self.images = small_images(folder)
        self.exports = folder / "exports"
        self.exports.mkdir()
        import tiny_models  # imports torch, which only this test needs

        self.model_file = tiny_models.save_torchscript(tiny_models.bright_pixel_net(), folder / "bright.pt")
        panel = window.layer_panel
        # (weight, name, action): painting and running operators most, files now and then.
        menu = self.trigger
        self.actions = [
            (8, "stroke", self.stroke), (4, "box", self.box), (2, "fill or point", self.fill_or_point),
            (6, "choose operator", self.choose_operator),
            (2, "choose deep-learning operator", self.choose_deep_learning_operator),
            (8, "apply", self.apply), (4, "preview", self.preview),
            (2, "cancel a run", self.cancel_a_run), (3, "apply and go on", lambda: menu(window.action_apply)), (6, "undo", lambda: menu(window.action_undo)),
            (4, "redo", lambda: menu(window.action_redo)), (5, "select layer", self.select_layer),
            (3, "move up", lambda: menu(panel.action_move_up)), (3, "move down", lambda: menu(panel.action_move_down)),
            (3, "toggle visibility", self.toggle_visibility), (3, "delete", lambda: menu(panel.action_delete)),
            (2, "new markers", lambda: menu(panel.action_new_markers)),
            (1, "new mask", lambda: menu(panel.action_new_mask)),
            (1, "duplicate", lambda: menu(panel.action_duplicate)),
            (1, "to labels", lambda: menu(panel.action_to_labels)), (1, "to mask", lambda: menu(panel.action_to_mask)),
            (3, "export", self.export), (2, "open", self.open_file), (1, "open in background", self.open_in_background),
            (1, "add image", self.add_image), (1, "close", window.files.close_document),
            (2, "dismiss message", self.dismiss_message), (1, "clear seeds", lambda: menu(window.action_clear_seeds)),
            (1, "remove click", lambda: menu(window.action_remove_click)),
            (1, "apply transform", lambda: menu(window.transforms.action_apply_transform)),
            (1, "autosave", window.autosave_now),
        ]
        self.weights = [weight for weight, _, _ in self.actions]

    def warm_up(self):
        """Apply every operator once, with the seeds each needs: the libraries they import
        on first use belong to the memory baseline, not to its growth."""
        window = self.window
        self.open_file()
        for label, row in ((1, 30), (2, 5)):
            window.canvas.active_label = label
            window.canvas.stroke([(row, 10), (row, 70)])
        window.document.set_rect((10, 10, 60, 45))
        for operator in ("threshold", *CHEAP_OPERATORS):
            window.choose_operator(get(operator))
            self.apply()
        for operator in DEEP_LEARNING_SETTINGS:
            self.choose_deep_learning_operator(operator)
            self.apply()
        window.files.close_document()

    # -- one action ---------------------------------------------------------------------
    def step(self):
        """Do one random action; returns its name."""
        (_, name, action), = self.rng.choices(self.actions, self.weights)
        if not self.window.document.layers and self.rng.random() < 0.7:
            name, action = "open", self.open_file  # an empty window mostly gets a file
        action()
        return name

    def trigger(self, action):
        """A menu entry as a person chooses it: only when it is enabled."""
        if action.isEnabled():
            action.trigger()

    def pixel(self):
        """A random (row, col) on the image, or None without one."""
        shape = self.window.document.shape
        if shape is None:
            return None
        return self.rng.uniform(0, shape[0] - 1), self.rng.uniform(0, shape[1] - 1)

    def use_tool(self, tool):
        self.window.tool_actions[tool].trigger()

    def stroke(self):
        if self.pixel() is None:
            return
        self.use_tool(self.rng.choice(PAINT_TOOLS))
        self.window.label_actions[self.rng.randrange(3)].trigger()
        self.window.canvas.brush_radius = self.rng.choice((1, 3, 6))
        points = [self.pixel() for _ in range(self.rng.randint(2, 5))]
        drag(self.window.canvas, points)

    def box(self):
        if self.pixel() is None:
            return
        self.use_tool(Tool.BOX)
        drag(self.window.canvas, [self.pixel(), self.pixel()])

    def fill_or_point(self):
        spot = self.pixel()
        if spot is None:
            return
        self.use_tool(self.rng.choice((Tool.FILL, Tool.POINT_POSITIVE, Tool.POINT_NEGATIVE, Tool.POLYGON)))
        click(self.window.canvas, *spot)

    def choose_operator(self):
        self.window.choose_operator(get(self.rng.choice(CHEAP_OPERATORS)))

    def choose_deep_learning_operator(self, name=None):
        """Choose a deep-learning operator (``name``, else a random one) and type its quick
        settings into the form."""
        name = name or self.rng.choice(list(DEEP_LEARNING_SETTINGS))
        self.window.choose_operator(get(name))
        settings = dict(DEEP_LEARNING_SETTINGS[name])
        if name == "run_model":
            settings |= {"model": str(self.model_file), "tile_size": self.rng.choice(MODEL_TILE_SIZES)}
        for param, value in settings.items():
            self.set_field(param, value)

    def set_field(self, param, value):
        """Enter ``value`` in the operator form's field for ``param``."""
        panel = self.window.operator_panel
        editor = panel.findChild(QWidget, f"param_{param}")
        if isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            editor.setValue(value)
        else:  # a file path: its text field
            panel.findChild(QLineEdit, f"param_{param}_text").setText(value)

    def wait_for_runner(self):
        self.qtbot.waitUntil(lambda: not self.window.runner.busy, timeout=30_000)

    def apply(self):
        self.trigger(self.window.action_apply)
        self.wait_for_runner()

    def preview(self):
        self.trigger(self.window.action_preview)
        self.wait_for_runner()

    def cancel_a_run(self):
        self.trigger(self.window.action_apply)
        self.trigger(self.window.action_cancel)

    def select_layer(self):
        layers = list(self.window.document.layers)
        if layers:
            self.window.document.layers.selected = self.rng.choice(layers)

    def toggle_visibility(self):
        layer = self.window.document.layers.selected
        if layer is not None:
            self.window.document.set_property(layer, "visible", not layer.visible)

    def export(self):
        what = self.rng.choice(list(EXPORTS))
        # One file per kind, overwritten: the folder stays small however long the run.
        self.window.exports.export(what, self.exports / f"{what}.{EXPORTS[what]}")

    def open_file(self):
        self.window.open_paths([self.images[self.rng.choice(("photo", "gray"))]])

    def open_in_background(self):
        with self.qtbot.waitSignal(self.window.files.opened, timeout=10_000):
            self.window.files.open_paths([self.images["photo"]], background=True)

    def add_image(self):
        if self.window.document.layers:
            self.window.files.add_image_layers(self.images[self.rng.choice(list(self.images))])

    def dismiss_message(self):
        for box in self.window.findChildren(QMessageBox):
            box.close()


def resident_mb():
    return psutil.Process().memory_info().rss / 2**20


def test_a_random_person_meets_no_exception_and_no_leak(window, qtbot, tmp_path, capsys):
    # Reference cycles are collected as the application collects them: every 2 s while
    # no worker runs (the suite's collector is off during a test).
    collect_garbage_when_idle(window)
    monkey = Monkey(window, qtbot, tmp_path, SEED)
    monkey.warm_up()
    recent = deque(maxlen=15)
    memory = [(0, round(resident_mb()))]
    with qtbot.captureExceptions() as exceptions:
        for number in range(1, ACTIONS + 1):
            recent.append(monkey.step())
            # Deletions of closed boxes and finished workers' objects, as an idle event loop runs them.
            QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            assert not exceptions, f"after action {number} ({', '.join(recent)}): {exceptions[0][1]!r}"
            # The window's box and the layer panel's: each replaces its own unanswered one.
            assert len(window.findChildren(QMessageBox)) <= 2, "message boxes pile up"
            if number == WARM_UP_ACTIONS or number % 1000 == 0:
                memory.append((number, round(resident_mb())))
    window.runner.cancel()
    with capsys.disabled():
        print(f"\nmonkey seed {SEED}: {ACTIONS} actions, resident MB after actions: {memory}")
    baseline = dict(memory)[WARM_UP_ACTIONS]
    assert max(mb for _, mb in memory) - baseline < MEMORY_BOUND_MB, memory
    assert window.document.history.nbytes < 50 * 2**20
