"""Copy the licence files of every installed Python distribution into one folder.

    python packaging/collect_licenses.py build/licenses

Run with the interpreter whose packages go into the desktop bundle (``make bundle`` does);
the spec puts the folder into the bundle as ``licenses/``, so that the LGPL of Qt and the
licences of NumPy, OpenCV, SimpleITK and the others travel with the binaries. A
distribution whose metadata names no licence file gets its declared licence in
``<name>/LICENSE-METADATA.txt``.
"""

from __future__ import annotations

import shutil
import sys
from importlib import metadata
from pathlib import Path

#: Files of a distribution that hold its licence text (PEP 639 puts them under licenses/).
LICENCE_MARKERS = ("licen", "copying", "notice", "authors")


def licence_files(distribution: metadata.Distribution) -> list[Path]:
    """The licence texts a distribution installed, by their path on disk."""
    found = []
    for file in distribution.files or []:
        parts = [part.lower() for part in file.parts]
        if ".dist-info" in parts[0] and any(marker in part for part in parts[1:] for marker in LICENCE_MARKERS):
            found.append(Path(file.locate()))
    return [path for path in found if path.is_file()]


def collect(out: Path) -> int:
    """Write every distribution's licence files under ``out/<name>/``; returns how many distributions."""
    if out.exists():
        shutil.rmtree(out)
    names = set()
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name is None or name.lower() in names:
            continue
        names.add(name.lower())
        folder = out / name
        folder.mkdir(parents=True)
        files = licence_files(distribution)
        for path in files:
            shutil.copyfile(path, folder / path.name)
        if not files:
            declared = distribution.metadata.get("License-Expression") or distribution.metadata.get("License") or "not stated"
            (folder / "LICENSE-METADATA.txt").write_text(f"{name} {distribution.version}: {declared}\n")
    python_licence = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "LICENSE.txt"
    if python_licence.is_file():
        (out / "Python").mkdir()
        shutil.copyfile(python_licence, out / "Python" / "LICENSE.txt")
    return len(names)


if __name__ == "__main__":
    print(f"licences of {collect(Path(sys.argv[1]))} distributions in {sys.argv[1]}")
