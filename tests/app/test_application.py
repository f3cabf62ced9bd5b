"""The window's garbage collection (maskwork.app.application)."""

import gc
import sys
import threading
import types

from maskwork.app import application


def test_an_idle_collection_freezes_what_new_modules_brought_and_later_ones_skip_it(monkeypatch):
    monkeypatch.setattr(application, "_modules_at_last_freeze", len(sys.modules))
    assert not application.collect_idle_garbage(), "nothing imported since: a plain collection"
    frozen = gc.get_freeze_count()

    # An operator's first run imports a module: its objects are frozen once...
    monkeypatch.setitem(sys.modules, "maskwork_test_fresh_module", types.ModuleType("maskwork_test_fresh_module"))
    assert application.collect_idle_garbage()
    assert gc.get_freeze_count() > frozen
    # ...and the next idle collections walk none of them again.
    assert not application.collect_idle_garbage()


def test_a_frozen_object_is_still_freed_when_its_last_reference_goes(monkeypatch):
    import weakref

    class Payload:
        pass

    payload = Payload()
    alive = weakref.ref(payload)
    monkeypatch.setattr(application, "_modules_at_last_freeze", -1)
    assert application.collect_idle_garbage()
    del payload
    assert alive() is None


def test_freed_memory_goes_back_on_a_worker_when_the_person_turns_away(qtbot, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QWidget

    from maskwork.widgets.workers import live_workers, start_worker

    given_back = []
    monkeypatch.setattr(application, "keeping_freed_memory", lambda: True)
    monkeypatch.setattr(application, "give_back_freed_memory", lambda: given_back.append(True))
    window = QWidget()
    qtbot.addWidget(window)
    give_back = application.MemoryGiveBack(window)
    inactive, active = Qt.ApplicationState.ApplicationInactive, Qt.ApplicationState.ApplicationActive

    give_back.on_application_state(inactive)
    assert not live_workers() and given_back == [], "no work ran: nothing was kept since"

    # The worker may finish before any waitSignal could connect to it: its own
    # finished callback is connected before it starts.
    finished = []
    start_worker(lambda _worker: None, finished=lambda: finished.append(True))
    qtbot.waitUntil(lambda: finished == [True] and not live_workers())
    give_back.on_application_state(active)
    assert given_back == [], "back in the window: the memory is kept for the next run"
    give_back.on_application_state(inactive)
    qtbot.waitUntil(lambda: given_back == [True] and not live_workers())
    give_back.on_application_state(Qt.ApplicationState.ApplicationHidden)
    assert not live_workers() and given_back == [True], "once per spell away"

    # A run still going when the person turns away: its memory is given back next time.
    release = threading.Event()
    running = start_worker(lambda _worker: release.wait(10))
    give_back.on_application_state(active)
    give_back.on_application_state(inactive)
    assert given_back == [True]
    with qtbot.waitSignal(running.finished):
        release.set()
    give_back.on_application_state(active)
    give_back.on_application_state(inactive)
    qtbot.waitUntil(lambda: given_back == [True, True] and not live_workers())
