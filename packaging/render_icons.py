"""Render maskwork/resources/maskwork.svg to the PNG icon sizes desktops look for.

    python packaging/render_icons.py            # writes packaging/icons/hicolor/NxN/apps/maskwork.png

The PNGs are committed (a desktop install, the bundle and the conda recipe copy them and
need no Qt to do so); run this after changing the SVG. tests/test_packaging.py renders
one size again and compares it with the committed file. Needs PySide6 (maskwork-core's
``app`` extra).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

REPO = Path(__file__).resolve().parents[1]
SVG = REPO / "maskwork" / "resources" / "maskwork.svg"
ICONS = REPO / "packaging" / "icons" / "hicolor"
#: The sizes of the freedesktop hicolor theme that applications usually ship.
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def render(size: int, svg: Path = SVG) -> QImage:
    """The SVG drawn on a transparent ``size`` x ``size`` ARGB image."""
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def icon_path(size: int, root: Path = ICONS) -> Path:
    """Where the hicolor theme keeps the ``size`` icon."""
    return root / f"{size}x{size}" / "apps" / "maskwork.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ICONS, help="hicolor folder to write into")
    args = parser.parse_args(argv)
    QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # QImage text and SVG rendering need one
    for size in SIZES:
        path = icon_path(size, args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not render(size).save(str(path)):
            raise OSError(f"could not write {path}")
    scalable = args.out / "scalable" / "apps" / "maskwork.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SVG, scalable)
    print(f"wrote {len(SIZES)} PNGs and the SVG under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
