"""Entry point of the frozen build: the command line (`glitchview gui` opens the window)."""

import multiprocessing
import sys

from glitchview.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # spawned children (GGUF conversion, UMAP) re-enter here
    sys.exit(main())
