"""The GIL-free pre-loading of a package's native libraries (maskwork.operators.native_libraries)."""

import subprocess
import sys
import textwrap

import pytest

from maskwork.operators.native_libraries import load_native_libraries

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")


def run_fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return its output."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_libraries_are_mapped_before_the_package_is_imported_and_the_import_then_works():
    output = run_fresh("""
        import sys
        from maskwork.operators.native_libraries import load_native_libraries
        opened = load_native_libraries(["SimpleITK"])
        maps = open("/proc/self/maps").read()
        print("opened", [path.name for path in opened])
        print("mapped", all(str(path) in maps for path in opened))
        print("imported", "SimpleITK" in sys.modules)
        print("again", load_native_libraries(["SimpleITK"]))
        import numpy as np
        import SimpleITK as sitk
        image = sitk.GetImageFromArray(np.arange(16, dtype=np.float32).reshape(4, 4))
        print("works", float(sitk.GetArrayFromImage(sitk.Flip(image, [True, False]))[0, 0]))
    """)
    lines = dict(line.split(" ", 1) for line in output.splitlines())
    assert "_SimpleITK" in lines["opened"]
    assert lines["mapped"] == "True"
    assert lines["imported"] == "False"
    assert lines["again"] == "[]"
    assert lines["works"] == "3.0"


def test_imported_unknown_and_pure_python_packages_are_left_alone():
    import numpy  # noqa: F401  (imported: nothing to do)

    assert load_native_libraries(["numpy", "numpy.linalg"]) == []
    assert load_native_libraries(["no_such_package_here"]) == []
    assert load_native_libraries(["json"]) == []


def test_import_ahead_imports_what_is_missing_and_names_a_missing_extra():
    from maskwork.operators.extras import MissingExtra
    from maskwork.operators.native_libraries import import_ahead

    output = run_fresh("""
        import sys
        from maskwork.operators.native_libraries import import_ahead
        print("imported", "SimpleITK" in import_ahead(["SimpleITK", "json"], "Registration"), "SimpleITK" in sys.modules)
        print("again", import_ahead(["SimpleITK"], "Registration"))
    """)
    lines = dict(line.split(" ", 1) for line in output.splitlines())
    assert lines["imported"] == "True True"
    assert lines["again"] == "[]"
    with pytest.raises(MissingExtra, match="Segmentation"):
        import_ahead(["no_such_package_here"], "Segmentation")
