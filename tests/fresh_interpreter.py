"""Run code in a fresh Python interpreter: what an import or a call pulls in is only
visible where nothing was imported before."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable


def modules_loaded_after(code: str, modules: Iterable[str]) -> list[str]:
    """Those of ``modules`` that are imported once ``code`` has run in a new interpreter."""
    names = list(modules)
    script = f"{code}\nimport sys\nprint(','.join(m for m in {names!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [name for name in done.stdout.strip().split(",") if name]
