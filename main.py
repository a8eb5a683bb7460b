"""`python main.py` starts GlitchView."""

import sys

from glitchview.gui import main

if __name__ == "__main__":
    sys.exit(main())
