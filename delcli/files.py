"""Writing files so that a reader never sees half of one: `atomic_path`."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path | str, mode: int = 0o644) -> Iterator[str]:
    """A temporary file name beside `path`; when the block ends without an error the file
    gets `mode` and is renamed onto `path`, else it is removed and `path` is untouched.

    The temporary name is hidden (`.NAME.xxxx.tmpSUFFIX`) and keeps `path`'s suffix last,
    for writers that look at it (matplotlib, torch.export.save)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
    )
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
