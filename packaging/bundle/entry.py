"""The desktop bundle's program: the same entry point as the ``maskwork`` command."""

import sys

from maskwork.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
