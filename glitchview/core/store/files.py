"""Safe file writing: a save either completes or leaves the previous file as it was, and never
replaces something that is not a regular file.

What is at the path decides how it is written:
- nothing, or a regular file: a temporary file beside it, fsync, rename over it (atomic);
- a symlink: followed, and its target is replaced atomically (the link stays a link);
- a character device (`/dev/null`, a terminal) or a FIFO with a reader: written through, in place;
- a directory, a socket, a block device, or a FIFO nobody reads: refused with `OutputFileError`.
Temporary files are named `.NAME.<pid>.<random>.tmp`; those of writers that died (kill -9) are
removed by the next save to the same path."""

from __future__ import annotations

import errno
import glob
import os
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from ..errors import OutputFileError

STALE_TMP_SECONDS = 3600  # a temporary file without a readable writer id is stale after an hour


def _existing_mode(path: Path) -> int | None:
    """The mode of what `path` points to (symlinks followed), or None when nothing is there."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputFileError(f"cannot write to {path}: {exc.strerror or exc}") from exc


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file, existing (links, hard links) or about to be written."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_overwriting(output: Path, *inputs: Path) -> None:
    """Refuse to write `output` over one of the files the command reads."""
    for source in inputs:
        if same_file(output, source):
            raise OutputFileError(f"refusing to write {output} over the input file {source}; choose another file")


@contextmanager
def atomic_write(path: Path, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open `path` for writing the safe way for what is there (see the module docstring)."""
    path = Path(path)
    kind = _existing_mode(path)
    if kind is None or stat.S_ISREG(kind):
        with _replace_atomically(Path(os.path.realpath(path)), mode, **kwargs) as handle:
            yield handle
    elif stat.S_ISCHR(kind) or stat.S_ISFIFO(kind):
        with _write_through(path, mode, **kwargs) as handle:
            yield handle
    else:
        what = "a folder" if stat.S_ISDIR(kind) else "not a regular file"
        raise OutputFileError(f"cannot write to {path}: it is {what}")


@contextmanager
def _write_through(path: Path, mode: str, **kwargs) -> Iterator[IO]:
    """Write into a device or FIFO in place; a FIFO without a reader is refused, never waited on."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        reason = "a FIFO that nobody reads" if exc.errno == errno.ENXIO else (exc.strerror or str(exc))
        raise OutputFileError(f"cannot write to {path}: {reason}") from exc
    os.set_blocking(fd, True)
    with os.fdopen(fd, mode, **kwargs) as handle:
        yield handle


@contextmanager
def _replace_atomically(path: Path, mode: str, **kwargs) -> Iterator[IO]:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make saved files private
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _is_stale(tmp: Path, prefix: str) -> bool:
    """A temporary file is stale when its writer has died (or, without a writer id, when it is old)."""
    writer = tmp.name[len(prefix):].split(".", 1)[0]
    if writer.isdigit():
        return int(writer) != os.getpid() and not _writer_alive(int(writer))
    try:
        return time.time() - tmp.lstat().st_mtime > STALE_TMP_SECONDS
    except OSError:
        return False


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the `.NAME.*.tmp` files that writers killed mid-save left beside `path`."""
    prefix = f".{path.name}."
    removed = []
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        if tmp.is_file() and not tmp.is_symlink() and _is_stale(tmp, prefix):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed

