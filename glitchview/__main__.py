"""`python -m glitchview` runs the command line."""

import sys

from .cli import main

if __name__ == "__main__":  # child processes (spawn) re-import this module: never run it twice
    sys.exit(main())
