"""Freed memory kept in the process for the next run (maskwork.core.heap), in fresh interpreters:
glibc fixes its heap settings before the first thread allocates."""

import os
import subprocess
import sys

import pytest

from maskwork.core import heap

pytestmark = pytest.mark.skipif(heap._glibc() is None, reason="glibc's malloc only")

#: Frees 400 MB allocated in a worker thread, allocates it again, then gives it back;
#: prints the policy and the resident megabytes after each step.
SCRIPT = """
import os, threading
from maskwork.core import heap
kept = heap.keep_freed_memory()
import numpy as np

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20

def run():
    block = np.ones(400 * 2**20 // 8)
    del block

def page_faults():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

base = resident()
worker = threading.Thread(target=run)
worker.start(); worker.join()
after_free = resident() - base
before = page_faults()
worker = threading.Thread(target=run)
worker.start(); worker.join()
faults = page_faults() - before
heap.give_back_freed_memory()
after_give_back = resident() - base
print(kept, heap.keeping_freed_memory(), heap.child_variables().get("MALLOC_ARENA_MAX"), after_free, faults,
      after_give_back)
"""


def run_script(**environment):
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    env.pop(heap.OPT_OUT_VARIABLE, None)
    env.update(environment)
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    kept, keeping, arenas, after_free, faults, after_give_back = done.stdout.split()
    return kept == "True", keeping == "True", arenas, int(after_free), int(faults), int(after_give_back)


def test_memory_a_worker_freed_is_reused_without_faults_and_given_back_on_request():
    kept, keeping, arenas, after_free, faults, after_give_back = run_script()
    assert kept and keeping and arenas == "1", "maskwork's children are started with the policy"
    assert after_free >= 350, f"the freed 400 MB stays in the process ({after_free} MB resident)"
    # 400 MB is 100,000 pages, or 200 where numpy gets transparent huge pages.
    assert faults < 50, f"the second run reuses it ({faults} page faults)"
    assert after_give_back < 100, f"and goes back to the system when asked ({after_give_back} MB left)"


def test_glibcs_default_returns_freed_memory_at_once():
    kept, keeping, arenas, after_free, faults, _ = run_script(**{heap.OPT_OUT_VARIABLE: "0"})
    assert not kept and not keeping and arenas == "None"
    assert after_free < 100 and faults > 100


def test_a_persons_own_malloc_settings_stand():
    kept, keeping, arenas, *_ = run_script(MALLOC_ARENA_MAX="4")
    assert not kept and not keeping and arenas == "None"


def test_the_window_keeps_freed_memory_and_the_command_line_does_not():
    """``maskwork`` (the window, and its --version) sets the policy first thing; ``maskwork
    ops|run|batch`` leave glibc's default to their batch workers' many threads, and a
    frozen bundle's child takes its parent's choice from its environment, not its own."""
    code = ("import sys\nfrom maskwork.__main__ import main\nmain(sys.argv[1:])\n"
            "from maskwork.core import heap\nprint(heap.keeping_freed_memory(), file=sys.stderr)")
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    env.pop(heap.OPT_OUT_VARIABLE, None)
    for args, keeping in ((["--version"], "True"), (["ops"], "False"), (["--serve-calls"], "False")):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=120)
        assert done.returncode == 0, done.stderr
        # stderr: the warm child's stdout carries its answers, and it points that at stderr.
        assert done.stderr.split()[-1] == keeping, args


def test_the_warm_child_keeps_freed_memory_as_its_parent_does():
    code = ("from maskwork.core import heap\nheap.keep_freed_memory()\n"
            "from maskwork.operators.context import null_context\n"
            "from maskwork.operators.stoppable import call_warm\n"
            "print(call_warm(null_context(), heap.keeping_freed_memory))")
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    env.pop(heap.OPT_OUT_VARIABLE, None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "True"
