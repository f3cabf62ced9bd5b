"""A missing extra (torch, onnxruntime, dask) is named with its pip command, never an ImportError.

Each test takes a package away by setting it to None in ``sys.modules``, which is how
Python marks a module that must not import: ``import torch`` then raises ImportError and
``importlib.util.find_spec`` finds nothing, as in an installation without the extra.

The pip command names the distribution the person installed: ``maskwork`` (the desktop
application, packaging/maskwork-app) or ``maskwork-core`` alone (a napari user). Each test
here is the desktop user's unless it says otherwise (:func:`desktop_application`).
"""

import importlib.metadata
import sys

import numpy as np
import pytest

from maskwork import cli
from maskwork.core import io
from maskwork.operators import get
from maskwork.operators.dl.device import import_torch
from maskwork.operators import extras
from maskwork.operators.extras import (
    MissingExtra,
    import_optional,
    install_command,
    missing_modules,
    needs_message,
    runs_as_desktop_application,
)
from maskwork.pipeline.inputs import LayerInput, WholeImageInput
from maskwork.pipeline.recipe import Recipe

DL = "pip install 'maskwork[dl]'"


@pytest.fixture(autouse=True)
def desktop_application(monkeypatch):
    """The person installed ``maskwork`` (the test environment has maskwork-core only)."""
    monkeypatch.setattr(extras, "runs_as_desktop_application", lambda: True)


def take_away(monkeypatch, *modules):
    """Make ``modules`` (and their submodules already imported) unimportable for one test."""
    for name in list(sys.modules):
        if name.split(".")[0] in modules:
            monkeypatch.setitem(sys.modules, name, None)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_install_command_names_the_extras_then_other_packages():
    assert install_command(["torch"]) == DL
    assert install_command(["onnxruntime", "torch"]) == DL
    assert install_command(["segment_anything", "torch"]) == "pip install 'maskwork[dl,sam]'"
    assert install_command(["dask"]) == "pip install 'maskwork[batch]'"
    assert install_command(["PySide6"]) == "pip install maskwork"
    assert install_command(["PySide6", "torch"]) == DL
    assert install_command(["cv2", "torch"]) == "pip install 'maskwork[dl]' opencv-python-headless"
    # the desktop application does not forward napari: maskwork-core's extra installs it
    assert install_command(["napari"]) == "pip install 'maskwork-core[napari]'"


def test_with_maskwork_core_alone_the_command_names_its_extras(monkeypatch):
    """A napari user's installation (``maskwork-core[napari]``): pip names maskwork-core's
    extras, except for the window, which is the ``maskwork`` distribution."""
    monkeypatch.setattr(extras, "runs_as_desktop_application", lambda: False)
    assert install_command(["torch"]) == "pip install 'maskwork-core[dl]'"
    assert install_command(["segment_anything", "torch"]) == "pip install 'maskwork-core[dl,sam]'"
    assert install_command(["napari"]) == "pip install 'maskwork-core[napari]'"
    assert install_command(["PySide6", "pyqtgraph"]) == "pip install maskwork"
    assert install_command(["PySide6", "torch"]) == DL
    assert install_command(["PySide6", "napari"]) == "pip install 'maskwork-core[app,napari]'"


def test_the_desktop_application_is_the_maskwork_distribution_that_requires_maskwork_core(monkeypatch):
    def requires_of(installed):
        def requires(name):
            if name not in installed:
                raise importlib.metadata.PackageNotFoundError(name)
            return installed[name]

        return requires

    monkeypatch.setattr(importlib.metadata, "requires", requires_of({"maskwork-core": ["numpy>=1.24"]}))
    assert not runs_as_desktop_application()
    monkeypatch.setattr(importlib.metadata, "requires", requires_of({"maskwork": ["maskwork-core[app]==0.1.0"]}))
    assert runs_as_desktop_application()
    # an older maskwork that held the code itself
    monkeypatch.setattr(importlib.metadata, "requires", requires_of({"maskwork": ["numpy>=1.24", "scipy>=1.10"]}))
    assert not runs_as_desktop_application()
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # the desktop bundle
    assert runs_as_desktop_application()


def test_the_bundle_says_it_leaves_the_extra_out(monkeypatch):
    assert needs_message("Deep learning", ["torch"]) == f"Deep learning needs torch: {DL}"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert "this desktop bundle leaves out" in needs_message("Deep learning", ["torch"])


def test_a_module_taken_away_is_missing(monkeypatch):
    assert missing_modules(["numpy", "torch"]) == []
    take_away(monkeypatch, "torch")
    assert missing_modules(["numpy", "torch"]) == ["torch"]


def test_import_optional_names_the_extra_of_a_missing_subpackage(monkeypatch):
    take_away(monkeypatch, "distributed")  # dask stays: dask.distributed needs the distributed package
    # A batch test earlier in the session may have imported it already.
    monkeypatch.delitem(sys.modules, "dask.distributed", raising=False)
    with pytest.raises(MissingExtra, match=r"maskwork batch needs distributed: pip install 'maskwork\[batch\]'"):
        import_optional("dask.distributed", "maskwork batch")


def test_a_broken_installation_is_not_a_missing_extra(tmp_path, monkeypatch):
    package = tmp_path / "maskwork_broken_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("import maskwork_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as raised:
        import_optional("maskwork_broken_pkg", "A test")
    assert not isinstance(raised.value, MissingExtra)
    assert raised.value.name == "maskwork_absent_dependency"


def test_without_torch_the_deep_learning_operators_say_how_to_install_it(monkeypatch):
    take_away(monkeypatch, "torch")
    with pytest.raises(MissingExtra, match=r"needs torch: pip install 'maskwork\[dl\]'"):
        import_torch()
    image = np.zeros((32, 32, 3), np.uint8)
    markers = np.zeros((32, 32), np.uint8)
    markers[:4], markers[-4:] = 1, 2
    for op_id, inputs in (("scribble_cnn", {"image": image, "markers": markers}), ("run_model", {"image": image})):
        spec = get(op_id)
        assert spec.missing_requirements() == ["torch"]
        assert spec.missing_requirements_message().endswith(DL)
        with pytest.raises(MissingExtra, match=r"pip install 'maskwork\[dl\]'"):
            spec.run(inputs)


def test_without_onnxruntime_an_onnx_model_says_how_to_install_it(monkeypatch, tmp_path):
    model = tmp_path / "segmenter.onnx"
    model.write_bytes(b"not read: onnxruntime is imported first")
    take_away(monkeypatch, "onnxruntime")
    spec = get("run_model")
    assert spec.missing_requirements() == []  # torch is there: TorchScript models still run
    with pytest.raises(MissingExtra, match=r"ONNX model needs onnxruntime: pip install 'maskwork\[dl\]'"):
        spec.run({"image": np.zeros((16, 16, 3), np.uint8)}, {"model": str(model), "device": "cpu"})


def test_ops_lists_what_each_operator_needs(monkeypatch, capsys):
    take_away(monkeypatch, "torch")
    assert cli.main(["ops"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("scribble_cnn", "grabcut "))]
    assert lines[0].startswith("scribble_cnn") and lines[0].endswith(f"(it needs torch: {DL})")
    assert "needs" not in lines[1]


def test_batch_without_dask_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    recipe = Recipe()
    recipe.add_step("grabcut", {"iterations": 1}, {"image": LayerInput(), "rect": WholeImageInput(0.1)}, {"mask": "cut"})
    recipe_file = recipe.save(tmp_path / "cut.json")
    io.write_image(tmp_path / "photo.png", np.full((24, 24, 3), 128, np.uint8))
    take_away(monkeypatch, "dask", "distributed")
    code = cli.main(["batch", str(recipe_file), str(tmp_path / "photo.png"), "-o", str(tmp_path / "out")])
    assert code == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == "maskwork: error: maskwork batch needs dask: pip install 'maskwork[batch]'"


def test_the_collector_waits_while_an_optional_package_imports(monkeypatch):
    """torch's extension set-up crashed when a collection ran inside it (on a worker thread)."""
    import gc
    import importlib

    seen = []
    monkeypatch.setattr(importlib, "import_module", lambda name: seen.append(gc.isenabled()) or sys)
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        import_optional("torch", "Deep learning")
        assert seen == [False] and gc.isenabled()
    finally:
        if not was_enabled:
            gc.disable()
