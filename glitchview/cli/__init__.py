"""Headless command line over the same pipeline as the GUI: `glitchview scan MODEL ...`, one module
per kind of command (analyse, verify, research), their arguments and their output.

Errors a user can cause (unknown model, corrupt file, no embedding matrix, bad option) print one
line and exit non-zero; set GLITCHVIEW_DEBUG=1 to see tracebacks of unexpected failures."""

from __future__ import annotations

import os
import sys
import traceback

from ..core.errors import Cancelled, GlitchViewError, one_line
from ..core.store.text import escape_text
from .arguments import UsageError, _check_paths, build_parser
from .output import EXIT_INTERRUPTED, EXIT_USER_ERROR, format_quality

__all__ = ["build_parser", "format_quality", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"glitchview: error: {escape_text(one_line(exc))} (see --help)", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.self_test:
        from ..selftest import run

        return run()
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        _check_paths(args)
        return args.func(args)
    except Cancelled:
        print("glitchview: cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\nglitchview: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (GlitchViewError, ValueError, OSError) as exc:
        print(f"glitchview: error: {escape_text(one_line(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # a bug: still one line unless debugging
        if os.environ.get("GLITCHVIEW_DEBUG"):
            traceback.print_exc()
        print(f"glitchview: unexpected error ({type(exc).__name__}): {escape_text(one_line(exc))}", file=sys.stderr)
        return 1
