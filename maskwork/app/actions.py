"""The one way the window and its controllers make a menu action."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget


def window_action(window: QWidget, text: str, slot: Callable, shortcut=None, tip: str = "") -> QAction:
    """A QAction of ``window`` that calls ``slot`` when triggered.

    Parameters
    ----------
    window : QWidget
        Owns the action, which is added to it so that its shortcut works while any of
        the window's widgets has the focus (and only then).
    text : str
        Menu text, with ``&`` before the mnemonic.
    slot : callable
        Called with the action's ``checked`` flag.
    shortcut : str, QKeySequence.StandardKey or a list of them, optional
        Keyboard shortcut(s) (:func:`key_sequences`).
    tip : str
        Status-bar text; the tooltip adds the shortcut to it.
    """
    action = QAction(text, window)
    if shortcut:
        action.setShortcuts(key_sequences(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(f"{tip} ({action.shortcut().toString()})" if shortcut else tip)
    action.triggered.connect(slot)
    window.addAction(action)
    return action


def key_sequences(shortcut) -> list[QKeySequence]:
    """Every key sequence of ``shortcut``: a string, a standard key with all the bindings the
    platform gives it (Close is Ctrl+F4 and Ctrl+W on Windows; ``QKeySequence(key)`` kept
    the first only), or a list of either."""
    if isinstance(shortcut, (list, tuple)):
        return [sequence for part in shortcut for sequence in key_sequences(part)]
    if isinstance(shortcut, QKeySequence.StandardKey):
        return QKeySequence.keyBindings(shortcut)
    return [QKeySequence(shortcut)]
