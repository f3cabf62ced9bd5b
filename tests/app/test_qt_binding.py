"""Guards against Qt-binding releases with known defects that would crash maskwork."""

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    changed = Signal(bool)


def test_signal_emit_keeps_the_reference_count_of_true():
    # PySide6 6.12.0 decremented True's reference count on every Python-side emit(),
    # aborting the interpreter once enough signals had fired (pyproject excludes it).
    emitter = _Emitter()
    emitter.changed.connect(lambda value: None)
    before = sys.getrefcount(True)
    for _ in range(200):
        emitter.changed.emit(False)
    assert sys.getrefcount(True) >= before - 5
