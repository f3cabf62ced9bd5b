"""Open the window of an installed maskwork, run GrabCut through it, and save what it shows.

    python3 packaging/check_installed_window.py /tmp/fresh/bin/maskwork -o /tmp/grabcut.png
    xvfb-run python3 packaging/check_installed_window.py /tmp/fresh/bin/maskwork --stay 10

Shows that an installation (a fresh virtual environment after ``pip install maskwork``)
opens the window and runs GrabCut in it. The installation's own Python (``python`` beside
its ``maskwork`` program) runs this file again, which drives the installed MainWindow as a
person does: it opens a photo file (a cat inside an ellipse on a brick wall), draws the
box around the ellipse, picks Segmentation > GrabCut and presses Apply, then waits for the
mask layer. It prints where maskwork was imported from, how long Apply took until the mask
layer arrived and how well the mask matches the ellipse (intersection over union), and
saves the window as a PNG. Nothing of this checkout is imported: the copy runs from an
empty temporary folder (Python puts a script's folder first on sys.path, and packaging/
has folders such as napari/ that would import as namespace packages) with PYTHONPATH
cleared.

Runs offscreen, or on the X display in DISPLAY when one is set (``--stay`` keeps the window
on screen after the result, for a screenshot of the screen). Exits with 1 when GrabCut
fails or its mask matches the ellipse poorly (IoU under 0.9).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The worst intersection over union with the ellipse that counts as GrabCut working, as
#: in the window's own test (tests/app/test_main_window.py); the pasted ellipse's sharp
#: edge lets the box alone reach 0.9996 here.
MIN_IOU = 0.9
APPLY_TIMEOUT_S = 120
#: How long the window paints after the result before it is saved.
PAINT_S = 1.0


def photo_with_object():
    """(RGB image, truth mask): a cat photo inside an ellipse on a brick-wall photo."""
    import numpy as np
    from skimage import data, draw

    rows, cols = 240, 320
    wall = data.brick()[:rows, :cols]
    image = np.stack([wall, (wall * 0.8).astype(np.uint8), (wall * 0.6).astype(np.uint8)], axis=2)
    truth = np.zeros((rows, cols), bool)
    truth[draw.ellipse(rows // 2, cols // 2, rows * 0.3, cols * 0.28, shape=truth.shape)] = True
    image[truth] = data.chelsea()[:rows, 60 : 60 + cols][truth]
    return image, truth


def run_events(seconds: float) -> None:
    """Let the window work and paint for ``seconds``."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def drive(folder: Path, screenshot: Path, stay_s: float) -> int:
    """In the installation's Python: open the photo, run GrabCut through the window, report."""
    import numpy as np
    import PySide6
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    import maskwork
    from maskwork.app.application import create_application
    from maskwork.app.main_window import MainWindow
    from maskwork.core import io
    from maskwork.core.layers import LayerKind

    print(f"maskwork {maskwork.__version__} from {Path(maskwork.__file__).parent}")
    image, truth = photo_with_object()
    photo = folder / "cat_on_wall.png"
    io.write_image(photo, image)

    create_application()
    print(f"PySide6 {PySide6.__version__}, Qt platform {QApplication.platformName()}")
    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    if not window.open_paths([photo]):
        print(f"the window did not open {photo}")
        return 1
    rows, cols = np.nonzero(truth)
    margin = 8
    top, left = rows.min() - margin, cols.min() - margin
    # What dragging the box tool around the ellipse sets.
    window.document.set_rect((left, top, cols.max() + margin - left, rows.max() + margin - top))
    window.operator_actions["grabcut"].trigger()  # Segmentation > GrabCut
    outcome: dict = {}
    loop = QEventLoop()
    window.runner.applied.connect(lambda layers: (outcome.update(layers=layers), loop.quit()))
    window.runner.failed.connect(lambda error: (outcome.update(error=error), loop.quit()))
    QTimer.singleShot(APPLY_TIMEOUT_S * 1000, loop.quit)
    started = time.perf_counter()
    window.action_apply.trigger()
    loop.exec()
    elapsed = time.perf_counter() - started
    masks = [layer for layer in outcome.get("layers", []) if layer.kind is LayerKind.MASK]
    if not masks:
        print(f"GrabCut gave no mask layer after {elapsed:.1f} s: {outcome.get('error', 'timed out')}")
        return 1
    mask = masks[0].data > 0
    iou = (mask & truth).sum() / (mask | truth).sum()
    print(f"GrabCut through the window: mask layer {masks[0].name!r} after {elapsed:.2f} s (Apply to result), "
          f"{int(mask.sum())} pixels, IoU with the object {iou:.4f}")  # fmt: skip
    run_events(PAINT_S)
    window.grab().save(str(screenshot))
    print(f"window saved: {screenshot}")
    run_events(stay_s)
    window.ask_to_save = lambda: QMessageBox.StandardButton.Discard  # "Don't save" when it closes
    window.close()
    return 0 if iou >= MIN_IOU else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("maskwork", type=Path, help="the installation's maskwork program, e.g. /tmp/fresh/bin/maskwork")
    parser.add_argument("-o", "--screenshot", type=Path, default=Path("installed-window-grabcut.png"))
    parser.add_argument("--stay", type=float, default=0.0, help="seconds the window stays open after the result")
    parser.add_argument("--drive", type=Path, help=argparse.SUPPRESS)  # the run inside the installation
    args = parser.parse_args(argv)
    if args.drive is not None:
        return drive(args.drive, args.screenshot, args.stay)

    python = args.maskwork.with_name("python")
    if not python.exists():
        parser.error(f"no python beside {args.maskwork}: give the maskwork program of a virtual environment")
    with tempfile.TemporaryDirectory() as home:
        environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        # Empty settings, cache and data folders: no remembered state or recovery prompt.
        environment.update({"XDG_CONFIG_HOME": f"{home}/config", "XDG_CACHE_HOME": f"{home}/cache",
                            "XDG_DATA_HOME": f"{home}/data"})  # fmt: skip
        if "DISPLAY" not in environment:
            environment["QT_QPA_PLATFORM"] = "offscreen"
        script = shutil.copy(__file__, Path(home) / Path(__file__).name)
        command = [str(python), script, str(args.maskwork), "--drive", home, "-o", str(args.screenshot.resolve()),
                   "--stay", str(args.stay)]  # fmt: skip
        return subprocess.run(command, env=environment, cwd=home, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
