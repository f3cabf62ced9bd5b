"""The window's garbage collection (maskwork.app.application)."""

import gc
import sys
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
