"""The napari tests under ``display/`` need a real X display with OpenGL.

The rest of the suite runs on Qt's offscreen platform, which napari cannot render on and
which one process cannot leave, so ``test_napari_plugin.py`` runs them in a subprocess on
a private Xvfb server, with :data:`DISPLAY_TESTS_ENV` set; without it they are not collected.
"""

import os

#: Set (to "1") in the subprocess that runs the display tests.
DISPLAY_TESTS_ENV = "MASKWORK_NAPARI_DISPLAY_TESTS"

collect_ignore = [] if os.environ.get(DISPLAY_TESTS_ENV) else ["display"]
