"""Packaging: what a core install runs, what the wheels carry, and the plugin's Qt binding.

Two distributions come from this repository: ``maskwork-core`` (the root's pyproject.toml:
all the code, no Qt binding; napari users install it) and ``maskwork`` (packaging/
maskwork-app: no code, ``maskwork-core[app]`` and forwarded extras; desktop users install
it). ``test_the_wheel_installs_and_runs_without_extras`` builds both wheels and installs
maskwork-core's into a fresh virtual environment with nothing but the core dependencies,
as ``pip install maskwork-core`` would; it takes about 15 s (pip's cache holds the wheels
after ``make test``'s own install).
"""

from __future__ import annotations

import ast
import email.parser
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from maskwork import __version__
from maskwork.core import io
from maskwork.operators.extras import APP_DISTRIBUTION, APP_FORWARDED_EXTRAS, CORE_DISTRIBUTION

REPO = Path(__file__).resolve().parents[1]
#: The ``maskwork`` distribution's project (the desktop application, no code).
APP_PROJECT = REPO / "packaging" / "maskwork-app"
#: Top-level modules that only an extra installs (pyproject.toml's optional dependencies),
#: with the Qt bindings' own helpers.
EXTRA_MODULES = (
    "PySide6", "shiboken6", "pyqtgraph", "superqt", "qtpy", "torch", "onnxruntime", "dask",
    "distributed", "napari", "magicgui", "segment_anything",
)  # fmt: skip
QT_BINDINGS = ("PySide6", "PySide2", "PyQt5", "PyQt6")
WHEEL_FILES = ("LICENSE", "maskwork/resources/maskwork.svg", "maskwork/napari/napari.yaml", "maskwork/__main__.py")


def _maskwork(args: list[str], cwd: Path, without: tuple[str, ...] = EXTRA_MODULES) -> subprocess.CompletedProcess:
    """``maskwork ARGS`` in a fresh interpreter where the modules ``without`` cannot be imported."""
    code = textwrap.dedent(
        f"""
        import sys
        for name in {without!r}:
            sys.modules[name] = None  # how Python marks a module that must not import
        from maskwork.__main__ import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=environment, check=False)  # fmt: skip


def test_the_core_runs_the_command_line_and_names_the_window_extra(tmp_path):
    io.write_image(tmp_path / "photo.png", np.pad(np.full((40, 40, 3), 220, np.uint8), ((20, 20), (20, 20), (0, 0))))
    listed = _maskwork(["ops"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    # the test environment installs maskwork-core alone (make test), as a napari user does
    assert "grabcut" in listed.stdout and "(it needs torch: pip install 'maskwork-core[dl]')" in listed.stdout
    cut = _maskwork(["run", "grabcut", "--image", "photo.png", "--rect", "10,10,60,60", "-o", "mask.png"], tmp_path)
    assert cut.returncode == 0, cut.stderr
    assert io.read_image(tmp_path / "mask.png")[40, 40] == 255
    window = _maskwork([], tmp_path)
    assert window.returncode == 2
    assert "The window needs PySide6, pyqtgraph, superqt: pip install maskwork" in window.stderr


def test_version():
    done = _maskwork(["--version"], REPO)
    assert (done.returncode, done.stdout) == (0, f"maskwork {__version__}\n")


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="a display is an X or Wayland server's there")
def test_without_a_display_the_window_says_so_instead_of_aborting(tmp_path):
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "maskwork"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**environment, "PYTHONPATH": str(REPO)}, check=False)
    assert done.returncode == 2, "Qt aborted (SIGABRT) and advised reinstalling"
    assert "no display to open the window on" in done.stderr and "maskwork --help" in done.stderr


def test_an_unknown_option_names_every_command():
    done = _maskwork(["--bogus"], REPO, without=())
    assert done.returncode == 2
    assert "unknown option --bogus (commands: ops, run, batch, models; or give image files)" in done.stderr


def _imported_names(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (at module level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_napari_plugin_reaches_qt_only_through_qtpy():
    """napari may run on PyQt5, PyQt6 or PySide6: no maskwork module the plugin loads names a binding."""
    if importlib.util.find_spec("napari") is None:
        pytest.skip("napari is not installed (pip install -e '.[napari]')")
    code = (
        "import sys, maskwork.napari.widgets, maskwork.napari.convert, maskwork.napari.bridge; "
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() if n.startswith('maskwork') and getattr(m, '__file__', None)))"
    )
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env=environment, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = [Path(line) for line in done.stdout.splitlines()]
    assert any(path.name == "workers.py" for path in loaded)  # the shared worker module is among them
    naming = {str(path.relative_to(REPO)): sorted(_imported_names(path) & set(QT_BINDINGS)) for path in loaded}
    assert {module: names for module, names in naming.items() if names} == {}


def _run(command: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


def _build_wheel(project: Path, out: Path) -> Path:
    """The wheel of ``project``, built by the test environment's setuptools (no build
    isolation: nothing is downloaded)."""
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, project], timeout=300)
    (wheel,) = out.glob("*.whl")
    return wheel


def _wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


@pytest.fixture(scope="module")
def app_wheel(tmp_path_factory) -> Path:
    """The ``maskwork`` distribution's wheel (packaging/maskwork-app)."""
    return _build_wheel(APP_PROJECT, tmp_path_factory.mktemp("app-dist"))


def test_the_application_wheel_is_maskwork_core_with_the_window_in_the_same_version(app_wheel):
    metadata = _wheel_metadata(app_wheel)
    assert (metadata["Name"], metadata["Version"]) == (APP_DISTRIBUTION, __version__)
    pin = f"=={__version__}"
    required = metadata.get_all("Requires-Dist")
    assert f"{CORE_DISTRIBUTION}[app]{pin}" in required
    # each forwarded extra is maskwork-core's of the same name, at the same version
    assert sorted(metadata.get_all("Provides-Extra")) == sorted(APP_FORWARDED_EXTRAS)
    for extra in APP_FORWARDED_EXTRAS:
        assert f'{CORE_DISTRIBUTION}[{extra}]{pin}; extra == "{extra}"' in required
    assert len(required) == 1 + len(APP_FORWARDED_EXTRAS)
    with zipfile.ZipFile(app_wheel) as archive:  # no code: the metadata only, with the licence
        assert all(".dist-info/" in name for name in archive.namelist())
        (licence,) = [name for name in archive.namelist() if name.endswith("/licenses/LICENSE")]
        assert archive.read(licence) == (REPO / "LICENSE").read_bytes()
    assert metadata["License-File"] == "LICENSE"


def test_the_wheel_installs_and_runs_without_extras(tmp_path, app_wheel):
    wheel = _build_wheel(REPO, tmp_path / "dist")
    metadata = _wheel_metadata(wheel)
    assert (metadata["Name"], metadata["Version"]) == (CORE_DISTRIBUTION, __version__)
    assert set(APP_FORWARDED_EXTRAS) <= set(metadata.get_all("Provides-Extra"))
    names = zipfile.ZipFile(wheel).namelist()
    for wanted in WHEEL_FILES:
        assert any(name == wanted or name.endswith(f".dist-info/licenses/{wanted}") for name in names), wanted
    assert not any(name.startswith("tests/") for name in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120)  # this pip installs into it
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel], timeout=900)
    installed = _run([python, "-m", "pip", "list", "--format=freeze"] if (venv / "bin" / "pip").exists()
                     else [sys.executable, "-m", "pip", "--python", python, "list", "--format=freeze"], timeout=120)  # fmt: skip
    distributions = {line.split("==")[0].lower() for line in installed.stdout.splitlines()}
    assert not distributions & {"torch", "onnxruntime", "dask", "pyside6-essentials", "napari"}

    maskwork = venv / "bin" / "maskwork"
    assert _run([maskwork, "--version"], timeout=60).stdout == f"maskwork {__version__}\n"
    listed = _run([maskwork, "ops"], timeout=120).stdout
    assert "grabcut" in listed and "(it needs torch: pip install 'maskwork-core[dl]')" in listed
    window = subprocess.run([maskwork], capture_output=True, text=True, timeout=60, check=False)
    assert window.returncode == 2 and "needs PySide6, pyqtgraph, superqt: pip install maskwork " in window.stderr

    # With the application's distribution beside it, the commands name its extras
    # (--no-deps: its PySide6 is not what this checks).
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", app_wheel], timeout=120)
    listed = _run([maskwork, "ops"], timeout=120).stdout
    assert "(it needs torch: pip install 'maskwork[dl]')" in listed


def test_the_sdist_carries_the_licence_resources_and_manifest(tmp_path):
    if importlib.util.find_spec("build") is None:
        pytest.skip("the build package is not installed")
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", tmp_path, REPO], timeout=300)
    (sdist,) = tmp_path.glob("maskwork_core-*.tar.gz")
    names = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    assert set(WHEEL_FILES) <= names
    # what distributions package beside the code (MANIFEST.in)
    assert {"packaging/linux/io.github.maskwork.maskwork.desktop", "packaging/icons/hicolor/256x256/apps/maskwork.png",
            "packaging/conda/meta.yaml", "packaging/maskwork-app/pyproject.toml"} <= names  # fmt: skip
    # the whole test suite, as packagers run it from here
    assert {str(path.relative_to(REPO)) for path in (REPO / "tests").rglob("*.py")} <= names
    # not what building the maskwork distribution's wheel leaves in its folder
    assert not [name for name in names if name.startswith("packaging/maskwork-app/") and "/" in name[len("packaging/maskwork-app/"):]]


#: conda-forge's names for the pip distributions whose conda package is called otherwise
#: (every other name is the pip name in lower case).
CONDA_NAMES = {"opencv-python-headless": "opencv", "PySide6-Essentials": "pyside6"}


def _conda_requirement(pip_requirement: str) -> str:
    """``"PyMaxflow>=1.3"`` -> ``"pymaxflow >=1.3"``, as the recipe writes it."""
    name, versions = re.fullmatch(r"([A-Za-z0-9_.-]+)(.*)", pip_requirement).groups()
    return f"{CONDA_NAMES.get(name, name.lower())} {versions}"


def test_the_conda_recipe_has_both_distributions_with_pyprojects_requirements():
    """packaging/conda/meta.yaml, rendered as conda-build would (its Jinja functions
    stubbed), has an output per pip distribution with the same requirements."""
    jinja2 = pytest.importorskip("jinja2")
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    environment = jinja2.Environment()
    environment.globals.update(
        load_file_data=lambda path, from_recipe_dir=True: tomllib.loads((REPO / path).read_text()),
        load_file_regex=lambda load_file, regex_pattern: re.search(regex_pattern, (REPO / load_file).read_text()),
        pin_subpackage=lambda name, exact=False: f"{name} =={__version__}",
    )
    recipe = yaml.safe_load(environment.from_string((REPO / "packaging" / "conda" / "meta.yaml").read_text()).render())
    assert recipe["package"]["version"] == __version__
    outputs = {output["name"]: output for output in recipe["outputs"]}
    assert list(outputs) == [CORE_DISTRIBUTION, APP_DISTRIBUTION]
    python = f"python {pyproject['project']['requires-python']}"
    core_run = outputs[CORE_DISTRIBUTION]["requirements"]["run"]
    assert sorted(core_run) == sorted([python] + [_conda_requirement(r) for r in pyproject["project"]["dependencies"]])
    app_run = outputs[APP_DISTRIBUTION]["requirements"]["run"]
    window = [_conda_requirement(r) for r in pyproject["project"]["optional-dependencies"]["app"]]
    assert sorted(app_run) == sorted([f"{CORE_DISTRIBUTION} =={__version__}", python] + window)


def test_the_committed_icons_are_rendered_from_the_svg(tmp_path, qapp):
    """packaging/icons matches maskwork.svg (run packaging/render_icons.py after changing it).

    ``qapp``: the suite's QApplication first, or the script would make a QGuiApplication
    under which later tests could not create widgets.
    """
    from PySide6.QtGui import QImage

    spec = importlib.util.spec_from_file_location("render_icons", REPO / "packaging" / "render_icons.py")
    render_icons = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render_icons)
    assert render_icons.main(["--out", str(tmp_path)]) == 0
    for size in render_icons.SIZES:
        committed = QImage(str(render_icons.icon_path(size)))
        assert (committed.width(), committed.height()) == (size, size)
    # One size pixel by pixel: anti-aliasing may differ by a level or two between Qt releases.
    rendered = QImage(str(render_icons.icon_path(48, tmp_path))).convertToFormat(QImage.Format.Format_RGBA8888)
    committed = QImage(str(render_icons.icon_path(48))).convertToFormat(QImage.Format.Format_RGBA8888)
    assert np.abs(_pixels(rendered) - _pixels(committed)).mean() < 2


def _pixels(image) -> np.ndarray:
    return np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.width(), 4).astype(int)


@pytest.mark.skipif(os.name == "nt", reason="the desktop entry is for Linux desktops")
def test_the_desktop_entry_names_the_program_by_its_whole_quoted_path(tmp_path):
    program = tmp_path / "My Apps" / "R&D" / "maskwork"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    home = tmp_path / "home"
    install = str(REPO / "packaging" / "linux" / "install.sh")
    environment = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["bash", install], capture_output=True, text=True, cwd=tmp_path, check=False,
                          env={**environment, "MASKWORK_EXEC": "My Apps/R&D/maskwork"})  # relative, as typed
    assert done.returncode == 0, done.stderr
    entry_file = home / ".local/share/applications/io.github.maskwork.maskwork.desktop"
    assert f'\nExec="{program}" %F\n' in entry_file.read_text(), "quoted, whole, and the & not read by sed"
    # no maskwork on PATH and none named: no entry that would never launch
    entry_file.unlink()
    done = subprocess.run(["bash", install], capture_output=True, text=True, cwd=tmp_path, env=environment, check=False)
    assert done.returncode == 1 and "maskwork is not on PATH" in done.stderr and not entry_file.exists()
