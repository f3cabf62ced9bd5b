"""Undo history made of small reversible atoms, grouped into named steps.

A pixel edit stores only the bounding box it touched and the values that were there, so a
brush stroke on an 8k x 8k layer costs kilobytes, not the whole layer. Every atom knows how
to revert itself and returns the atom that reverts the revert, which is how redo works
without storing new values up front.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from itertools import count
from typing import Iterator, Protocol

import numpy as np
from psygnal import Signal

from maskwork.core.layers import Bounds, Layer, LayerStack


class Atom(Protocol):
    """One reversible change."""

    nbytes: int

    def revert(self) -> "Atom":
        """Undo the change and return the atom that redoes it."""


@dataclass
class PixelAtom:
    """Old values of ``layer.data[bounds]`` before an edit."""

    layer: Layer
    bounds: Bounds
    old: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.old.nbytes)

    @cached_property
    def bounds_json(self) -> list[list[int | None]]:
        """``bounds`` as ``[[start, stop], [start, stop]]`` for a project file, made once:
        the autosave writes every atom of the history again, thousands after long strokes."""
        return [[None if end is None else int(end) for end in (part.start, part.stop)] for part in self.bounds]

    def revert(self) -> "PixelAtom":
        current = self.layer.data[self.bounds].copy()
        self.layer.write(self.bounds, self.old)
        return PixelAtom(self.layer, self.bounds, current)


@dataclass
class ReplaceDataAtom:
    """A whole-array replacement (shape or dtype may change)."""

    layer: Layer
    old: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.old.nbytes)

    def revert(self) -> "ReplaceDataAtom":
        current = self.layer.data
        self.layer.data = self.old
        return ReplaceDataAtom(self.layer, current)


@dataclass
class PropertyAtom:
    """A display property (name, visible, opacity, ...) before it changed."""

    layer: Layer
    attr: str
    old: object
    nbytes: int = 64

    def revert(self) -> "PropertyAtom":
        current = getattr(self.layer, self.attr)
        setattr(self.layer, self.attr, self.old)
        return PropertyAtom(self.layer, self.attr, current)


@dataclass
class AttributeAtom:
    """Any attribute of any object (the document's box or point seeds) before it changed."""

    target: object
    attr: str
    old: object
    nbytes: int = 64

    def revert(self) -> "AttributeAtom":
        current = getattr(self.target, self.attr)
        setattr(self.target, self.attr, self.old)
        return AttributeAtom(self.target, self.attr, current)


@dataclass
class InsertAtom:
    """A layer was inserted at ``index``; reverting removes it."""

    stack: LayerStack
    index: int
    layer: Layer
    # The inserted layer is alive in the stack: history holds no extra copy of it.
    nbytes: int = 64

    def revert(self) -> "RemoveAtom":
        self.stack.remove(self.layer)
        return RemoveAtom(self.stack, self.index, self.layer)


@dataclass
class RemoveAtom:
    """A layer was removed from ``index``; reverting puts it back.

    History holds the only reference to the removed layer, so its pixels count in full.
    """

    stack: LayerStack
    index: int
    layer: Layer

    @property
    def nbytes(self) -> int:
        return int(self.layer.data.nbytes)

    def revert(self) -> InsertAtom:
        self.stack.insert(self.index, self.layer)
        return InsertAtom(self.stack, self.index, self.layer)


@dataclass
class MoveAtom:
    """A layer moved from ``source`` to ``destination``."""

    stack: LayerStack
    source: int
    destination: int
    nbytes: int = 16

    def revert(self) -> "MoveAtom":
        self.stack.move(self.destination, self.source)
        return MoveAtom(self.stack, self.destination, self.source)


#: A stroke's run of pixel atoms is merged into its common box as soon as the atoms hold
#: this many times the box's bytes, so its memory while the button is down stays near
#: the box (a 1,500-move stroke of a 200 px brush across 8k x 8k held 171 MB), and each
#: merge copies the box once per doubling of the atoms, not at every move.
MERGE_WHEN_ATOMS_HOLD = 2.0


@dataclass
class Step:
    """One user-visible undo step: a stroke, an operator run, a layer change.

    ``edits`` counts the pixel writes recorded into it (a stroke's mouse moves, however
    its atoms were merged; autosave takes many as a long stroke).
    """

    name: str
    atoms: list = field(default_factory=list)
    uid: int = field(default_factory=count(1).__next__)
    edits: int = 0

    @property
    def nbytes(self) -> int:
        return sum(atom.nbytes for atom in self.atoms)

    def revert(self) -> "Step":
        inverses = [atom.revert() for atom in reversed(self.atoms)]
        return Step(self.name, inverses, self.uid, self.edits)


class History:
    """Undo and redo stacks of :class:`Step`, bounded by step count and bytes.

    Parameters
    ----------
    max_steps : int
        Oldest steps are forgotten beyond this many.
    max_bytes : int
        Oldest steps are forgotten while undo plus redo data exceed this many bytes
        (the newest step is always kept, however large).
    """

    changed = Signal()
    """Emitted after any change to the undo or redo stack."""

    def __init__(self, max_steps: int = 200, max_bytes: int = 1 << 30) -> None:
        self.max_steps = max_steps
        self.max_bytes = max_bytes
        self._undo: deque[Step] = deque()
        self._redo: list[Step] = []
        self._open: list[Step] = []
        # The open group's newest run of pixel atoms on one layer (a stroke's mouse moves),
        # the tail of the atom list it is in: merged when anything else is recorded (the
        # layer then holds exactly what the run left), at the group's end, and whenever its
        # atoms hold MERGE_WHEN_ATOMS_HOLD times its box.
        self._run: list[PixelAtom] = []
        self._run_in: list | None = None
        self._run_bytes = 0
        self._run_box: tuple[int, int, int, int] | None = None  # top, bottom, left, right
        # Identity of the newest applied step at the last save; None = the initial state.
        self._saved_uid: int | None = None

    # -- recording --------------------------------------------------------------------
    @contextmanager
    def group(self, name: str) -> Iterator[Step]:
        """Collect every atom recorded inside the block into one step called ``name``.

        Nested groups fold into the outermost one. A group that recorded nothing leaves
        no step behind.
        """
        step = self.begin_group(name)
        try:
            yield step
        finally:
            self.end_group()

    def begin_group(self, name: str) -> Step:
        """Open a group that spans several events (a mouse drag); pair with :meth:`end_group`."""
        self._close_run()
        step = Step(name)
        self._open.append(step)
        return step

    def end_group(self) -> None:
        """Close the innermost open group, folding it into its parent or pushing it."""
        self._close_run()
        step = self._open.pop()
        if self._open:
            self._open[-1].atoms.extend(step.atoms)
            self._open[-1].edits += step.edits
            return
        if step.atoms:
            self._push(step)

    @property
    def in_group(self) -> bool:
        """Whether a group is open (undo waits until it closes)."""
        return bool(self._open)

    def record(self, atom: Atom, name: str = "edit") -> None:
        """Add an atom to the open group, or as a step of its own."""
        if self._open:
            self._close_run()
            self._open[-1].atoms.append(atom)
        else:
            self._push(Step(name, [atom]))

    def record_pixels(self, layer: Layer, bounds: tuple[slice, slice], name: str = "edit") -> None:
        """Keep the old values of ``layer.data[bounds]`` (about to be overwritten) for undo:
        an atom of the open group, or outside one a step of its own.

        In a group, consecutive writes to one layer (a stroke's mouse moves, which
        overlap: a 400 px brush dragged in 5 px steps kept the same pixels 25 times over)
        are merged into one atom of their common box where that holds fewer bytes
        (:func:`_merged`), when the run ends and whenever its atoms hold
        :data:`MERGE_WHEN_ATOMS_HOLD` times the box; a thin diagonal stroke, whose box is
        mostly untouched, keeps its own boxes.
        """
        atom = PixelAtom(layer, bounds, layer.data[bounds].copy())
        if not self._open:
            self._push(Step(name, [atom], edits=1))
            return
        step = self._open[-1]
        step.edits += 1
        if self._run and (self._run_in is not step.atoms or self._run[0].layer is not layer):
            self._close_run()
        step.atoms.append(atom)
        self._run.append(atom)
        self._run_in = step.atoms
        self._run_bytes += atom.nbytes
        self._run_box = _union(self._run_box, bounds)
        box_bytes = (self._run_box[1] - self._run_box[0]) * (self._run_box[3] - self._run_box[2]) * layer.data[:1, :1].nbytes
        if len(self._run) > 1 and self._run_bytes > MERGE_WHEN_ATOMS_HOLD * box_bytes:
            self._close_run()
            # Go on from the merged box: the next moves join it.
            self._run, self._run_in = [step.atoms[-1]], step.atoms
            self._run_bytes, self._run_box = step.atoms[-1].nbytes, _union(None, step.atoms[-1].bounds)

    def _close_run(self) -> None:
        """Merge the open run of pixel atoms where that saves bytes, while the layer holds
        what the run left (nothing recorded after it has written there yet)."""
        run, atoms = self._run, self._run_in
        self._run, self._run_in, self._run_bytes, self._run_box = [], None, 0, None
        if len(run) > 1:
            atoms[len(atoms) - len(run):] = _merged(run)

    def _push(self, step: Step) -> None:
        self._undo.append(step)
        self._redo.clear()
        self._trim()
        self.changed.emit()

    def _trim(self) -> None:
        while len(self._undo) > self.max_steps or (len(self._undo) > 1 and self.nbytes > self.max_bytes):
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        """Drop the oldest applied step: the state before it can no longer be reached."""
        step = self._undo.popleft()
        if self._saved_uid is None:
            self._saved_uid = -1  # the saved state was the one before it: gone
        elif self._saved_uid == step.uid:
            self._saved_uid = None  # the saved state is now the oldest one reachable

    # -- moving through history -------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        """Whether there is a step to undo."""
        return bool(self._undo) and not self._open

    @property
    def can_redo(self) -> bool:
        """Whether there is a step to redo."""
        return bool(self._redo) and not self._open

    def undo(self) -> str | None:
        """Revert the newest step; returns its name, or None when there is nothing."""
        if not self.can_undo:
            return None
        step = self._undo.pop()
        self._redo.append(step.revert())
        self.changed.emit()
        return step.name

    def redo(self) -> str | None:
        """Re-apply the newest undone step; returns its name, or None."""
        if not self.can_redo:
            return None
        step = self._redo.pop()
        self._undo.append(step.revert())
        self.changed.emit()
        return step.name

    def jump_to(self, count: int) -> None:
        """Undo or redo until exactly ``count`` steps are applied (0 = the initial state)."""
        count = max(0, min(count, len(self._undo) + len(self._redo)))
        while len(self._undo) > count and self.undo():
            pass
        while len(self._undo) < count and self.redo():
            pass

    # -- inspection -------------------------------------------------------------------
    @property
    def undo_names(self) -> list[str]:
        """Names of applied steps, oldest first."""
        return [step.name for step in self._undo]

    @property
    def redo_names(self) -> list[str]:
        """Names of undone steps, the next one to redo first."""
        return [step.name for step in reversed(self._redo)]

    @property
    def steps(self) -> tuple[list[Step], list[Step]]:
        """The applied steps, oldest first, and the undone ones, the next to redo last
        (the order :meth:`restore` takes them in)."""
        return list(self._undo), list(self._redo)

    @property
    def nbytes(self) -> int:
        """Bytes held by undo and redo data."""
        return sum(step.nbytes for step in self._undo) + sum(step.nbytes for step in self._redo)

    @property
    def is_modified(self) -> bool:
        """Whether the document differs from the last :meth:`mark_saved` point."""
        return self._top_uid() != self._saved_uid

    def _top_uid(self) -> int | None:
        return self._undo[-1].uid if self._undo else None

    def mark_saved(self) -> None:
        """Remember the current state as saved (clears :attr:`is_modified`)."""
        self._saved_uid = self._top_uid()
        self.changed.emit()

    def mark_unsaved(self) -> None:
        """Declare the current state unsaved (a restored autosave, for instance)."""
        self._saved_uid = -1
        self.changed.emit()

    def restore(self, applied: list[Step], undone: list[Step]) -> None:
        """Take ``applied`` and ``undone`` as the history, as :attr:`steps` gave them
        (crash recovery rebuilds them for the restored layers).

        The restored state is the starting point for :attr:`is_modified`.
        """
        self._undo = deque(applied)
        self._redo = list(undone)
        self._open.clear()
        self._run, self._run_in, self._run_bytes, self._run_box = [], None, 0, None
        self._saved_uid = self._top_uid()
        self._trim()
        self.changed.emit()

    def clear(self) -> None:
        """Forget all steps."""
        self._undo.clear()
        self._redo.clear()
        self._run, self._run_in, self._run_bytes, self._run_box = [], None, 0, None
        self._saved_uid = None
        self.changed.emit()


def _union(box: tuple[int, int, int, int] | None, bounds: tuple[slice, slice]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of ``box`` grown to hold ``bounds``."""
    rows, cols = bounds
    if box is None:
        return rows.start, rows.stop, cols.start, cols.stop
    return min(box[0], rows.start), max(box[1], rows.stop), min(box[2], cols.start), max(box[3], cols.stop)


def _merged(run: list[PixelAtom]) -> list[PixelAtom]:
    """One run of pixel atoms on one layer as one atom of their common box, if smaller.

    The box's old values are the layer's now, overwritten by each atom's old values from
    the newest to the oldest: where several atoms cover a pixel, the oldest (the value
    before the run) is left, as undoing them one by one would leave it.
    """
    layer = run[0].layer
    top = min(atom.bounds[0].start for atom in run)
    bottom = max(atom.bounds[0].stop for atom in run)
    left = min(atom.bounds[1].start for atom in run)
    right = max(atom.bounds[1].stop for atom in run)
    box = (slice(top, bottom), slice(left, right))
    if layer.data[box].nbytes >= sum(atom.nbytes for atom in run):
        return run
    old = layer.data[box].copy()
    for atom in reversed(run):
        rows, cols = atom.bounds
        old[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left] = atom.old
    return [PixelAtom(layer, box, old)]
