"""The napari plugin: its manifest follows the registry, and its widgets work in napari.

The widget tests need OpenGL on an X display, so :func:`test_napari_widgets_on_a_virtual_display`
runs them (``display/``) in a subprocess on a private Xvfb server and reports their
failures; this process itself never imports napari.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import os
import select
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from maskwork.napari.manifest import MANIFEST_PATH, PLUGIN_NAME, build_manifest, widget_class_name
from maskwork.operators.registry import all_operators

ROOT = Path(__file__).resolve().parents[2]
DISPLAY_TESTS = Path(__file__).with_name("display")
DISPLAY_TESTS_ENV = "MASKWORK_NAPARI_DISPLAY_TESTS"  # as in conftest.py
#: Generous: the display tests take about 30 s on two shared cores.
INNER_TIMEOUT_S = 300
#: Lines of the inner pytest output quoted when it fails.
REPORT_LINES = 150


def test_checked_in_manifest_matches_the_registry():
    checked_in = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    assert checked_in == build_manifest(), (
        "maskwork/napari/napari.yaml does not list the registered operators; "
        "regenerate it with: python -m maskwork.napari.manifest"
    )


def test_manifest_is_valid_npe2_with_one_widget_per_operator():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST_PATH)
    commands = {command.id: command for command in manifest.contributions.commands}
    widgets = manifest.contributions.widgets
    assert sorted(widget.command for widget in widgets) == sorted(f"{PLUGIN_NAME}.{spec.id}" for spec in all_operators())
    for spec in all_operators():
        command = commands[f"{PLUGIN_NAME}.{spec.id}"]
        assert command.python_name == f"maskwork.napari.widgets:{widget_class_name(spec.id)}"
    # napari finds a widget by its display name: they must be unique.
    assert len({widget.display_name for widget in widgets}) == len(widgets)


def test_the_entry_point_names_the_manifest():
    (entry_point,) = [ep for ep in entry_points(group="napari.manifest") if ep.name == PLUGIN_NAME]
    assert entry_point.value == "maskwork.napari:napari.yaml"
    # npe2 loads a manifest only from the distribution its name names
    assert entry_point.dist.name == PLUGIN_NAME
    assert MANIFEST_PATH.is_file()


@contextlib.contextmanager
def xvfb_display(executable: str, log_path: Path):
    """Start Xvfb on a free display number (it picks one itself) and yield ``":N"``."""
    read_fd, write_fd = os.pipe()
    with open(log_path, "wb") as log:
        # -displayfd: the server takes the first free display and writes its number to the
        # pipe once it accepts connections, so there is neither a race nor a guess.
        server = subprocess.Popen(
            [executable, "-displayfd", str(write_fd), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 30)
        number = os.read(read_fd, 16).decode().strip() if ready else ""
        if not number:
            pytest.fail(f"Xvfb did not start: {log_path.read_text(errors='replace')[-2000:]}", pytrace=False)
        yield f":{number}"
    finally:
        os.close(read_fd)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_napari_widgets_on_a_virtual_display(tmp_path):
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed; napari renders only with OpenGL on an X display "
                    "(install xvfb and libgl1-mesa-dri to run the napari plugin tests)")
    if ctypes.util.find_library("xcb-cursor") is None:
        pytest.skip("Qt's xcb platform plugin (Qt 6.5 and later) needs libxcb-cursor0, which is not installed")
    if importlib.util.find_spec("napari") is None:
        pytest.skip("napari is not installed (pip install -e '.[napari]')")
    with xvfb_display(xvfb, tmp_path / "xvfb.log") as display:
        env = {
            **os.environ,
            "DISPLAY": display,
            "QT_QPA_PLATFORM": "xcb",
            DISPLAY_TESTS_ENV: "1",
            # napari keeps its settings here instead of the user's configuration.
            "NAPARI_CONFIG": str(tmp_path / "napari_settings.yaml"),
        }
        command = [
            sys.executable, "-m", "pytest", "-q", "-rfE", "--tb=short", "--disable-warnings",
            f"--basetemp={tmp_path / 'inner'}", str(DISPLAY_TESTS),
        ]
        try:
            run = subprocess.run(
                command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=INNER_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as expired:
            output = expired.stdout or ""
            if isinstance(output, bytes):
                output = output.decode(errors="replace")
            pytest.fail(f"the napari display tests ran over {INNER_TIMEOUT_S} s:\n{output[-8000:]}", pytrace=False)
    if run.returncode != 0:
        lines = (run.stdout + run.stderr).splitlines()
        pytest.fail(
            f"napari display tests failed (exit {run.returncode}; rerun with "
            f"{DISPLAY_TESTS_ENV}=1 QT_QPA_PLATFORM=xcb xvfb-run -a python -m pytest {DISPLAY_TESTS.relative_to(ROOT)}):\n"
            + "\n".join(lines[-REPORT_LINES:]),
            pytrace=False,
        )
