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


def test_freed_memory_goes_back_once_per_idle_spell(monkeypatch):
    given_back = []
    monkeypatch.setattr(application, "give_back_freed_memory", lambda: given_back.append(now[0]))
    now = [0.0]
    idle = application.IdleMemory(clock=lambda: now[0])
    limit = application.GIVE_BACK_MEMORY_AFTER_S

    def tick(at: float, busy: bool = False, started: int = 0) -> None:
        now[0] = at
        idle.tick(busy, started)

    tick(limit - 1)
    assert given_back == [], "too soon: the next run would reuse it"
    tick(limit)
    tick(limit + 2)
    assert given_back == [limit], "once, not at every tick"
    tick(limit + 4, busy=True, started=1)  # a run: the memory is in use again
    tick(limit + 6, started=1)
    tick(2 * limit + 3, started=1)
    assert given_back == [limit], "the idle spell counts from the run's end"
    tick(2 * limit + 4, started=1)
    assert given_back == [limit, 2 * limit + 4]
    # A click's short run, started and ended between two ticks, starts a new spell too.
    tick(2 * limit + 6, started=2)
    tick(3 * limit + 5, started=2)
    assert given_back == [limit, 2 * limit + 4]
    tick(3 * limit + 6, started=2)
    assert given_back[-1] == 3 * limit + 6
