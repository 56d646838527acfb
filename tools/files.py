"""One way for the tools to write a file: a temp name in the same folder, then a rename, so a reader
(or a kill) never sees half a file where a complete one is expected."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` (its folder created if needed) through ``.<name>.tmp`` and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)
    return path
