"""Writing files so that a reader never sees half of one: `atomic_path`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

STDOUT = "-"  # as an output path: standard output


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[str]:
    """A temporary file name to write `path` through: when the block ends without an
    error its content is in place, complete; on an error (or SIGTERM, Ctrl-C) the
    temporary file is removed and `path` is untouched.

    - A regular file (new or existing) is renamed into place from beside it
      (`.NAME.xxxx.tmpSUFFIX`, `path`'s suffix last, for writers that look at it:
      matplotlib, torch.export.save).
    - A symlink is followed: its target is replaced atomically, the link stays.
    - Something that is not a regular file (a device such as /dev/null, a FIFO,
      /dev/stdout, /proc/self/fd/N) and `-` (standard output) receive the finished
      file's bytes; they are never replaced. (Writers get a real file either way:
      some, such as safetensors, rename their own temporary file over the name given.)
    - An existing file keeps its permission bits; a new one gets 0666 less the umask,
      as `open` would give it.
    """
    target = _regular_target(path)
    folder, name = (target.parent, target.name) if target is not None else (None, "out")
    suffix = Path(str(path)).suffix
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=f".tmp{suffix}")
    os.close(handle)
    try:
        yield temporary
        if target is None:
            _copy_into(temporary, path)
            Path(temporary).unlink()
        else:
            os.chmod(temporary, _mode_for(target))
            os.replace(temporary, target)
    except OSError as error:  # a full disk, say: name the file the user asked for
        Path(temporary).unlink(missing_ok=True)
        if error.errno is not None and error.filename in (None, temporary):
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomic(path: Path | str, write: Callable[[BinaryIO], None]) -> None:
    """`write(handle)` into `path` through `atomic_path` (its folder is created)."""
    target = _regular_target(path)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        write(handle)


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    write_atomic(path, lambda handle: handle.write(data))


def write_json_atomic(path: Path | str, data: Any) -> None:
    """`data` as indented JSON (one space), with a final newline, atomically."""
    write_bytes_atomic(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def _regular_target(path: Path | str) -> Path | None:
    """The regular file that `path` names, through symlinks (even a dangling one);
    None for standard output and anything that exists and is not a regular file."""
    if str(path) == STDOUT:
        return None
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.stat(path).st_mode):  # follows symlinks
            return None
    return Path(os.path.realpath(path))


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
        os.umask(mask)
        return 0o666 & ~mask


def _copy_into(temporary: str, path: Path | str) -> None:
    with open(temporary, "rb") as source:
        if str(path) == STDOUT:
            sys.stdout.flush()
            shutil.copyfileobj(source, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return
        with open(path, "wb") as sink:
            shutil.copyfileobj(source, sink)
