"""One writer per output folder: the lock `train` (run folder), `prepare` (store) and `average`
(output folder) hold while they write.

The lock is a small JSON file naming the holder (pid, host, command, start time): *beside* the
folder, ``.<name>.lock``, when the folder itself may be renamed away and replaced while the lock
is held (`prepare --overwrite`, `average --overwrite`: those already need the parent writable for
their temp folders), else *inside* it, ``.currimix.lock`` (a run folder, which `train --overwrite`
empties but never replaces, and whose parent may belong to someone else). Two mechanisms together:

- ``fcntl.flock`` on the open lock file decides who holds it. The kernel releases it when the
  holder exits, however it exits (kill -9 included), so a crashed run never blocks the next one.
- The pid and host written in it name the holder in the refusal, and tell a stale file apart: a
  lock file whose flock is free was left by a holder that died (its pid is gone, or reused by an
  unrelated process); it is taken over with a note. A free file naming *another* host is refused
  instead: flock may not reach across hosts on every network file system, so that holder might
  still be running; the message says how to remove the file once it is known to be gone.

The file is removed on release. Removal and a newcomer's open can race (the newcomer locks an
inode that was just unlinked), so after taking the flock a holder checks that the path still
names the inode it locked, and tries again otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from curriculum.errors import UserError

INSIDE_NAME = ".currimix.lock"


def lock_path(folder: Path, inside: bool = False) -> Path:
    """Where the lock of ``folder`` lives: ``.currimix.lock`` in it (``inside``), else
    ``.<name>.lock`` in its parent (a long name is shortened with a hash: the lock's name must fit
    wherever the folder's does)."""
    if inside:
        return folder / INSIDE_NAME
    name = folder.name
    if len(name.encode()) > 200:
        name = f"{name[:64]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return folder.parent / f".{name}.lock"


def _holder_text(holder: dict) -> str:
    started = holder.get("started")
    since = (
        time.strftime(" since %Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if isinstance(started, (int, float)) else ""
    )
    return f"`currimix {holder.get('command', '?')}` (pid {holder.get('pid', '?')} on host {holder.get('host', '?')}{since})"


def _read(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 4096):
        raw += chunk
        if len(raw) > 1 << 16:  # a lock file is a few hundred bytes; anything else is not ours
            break
    try:
        holder = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


@contextlib.contextmanager
def folder_lock(folder: Path, command: str, what: str = "folder", inside: bool = False) -> Iterator[None]:
    """Hold the lock of ``folder`` for the body; a `UserError` naming the holder when another
    process holds it. ``what`` names the folder in messages ("run folder", "token store");
    ``inside`` puts the lock in the folder (creating it) rather than beside it."""
    folder = Path(folder).absolute()
    path = lock_path(folder, inside)
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)  # an OSError here (a file in the way) is the caller's message
    fd = _acquire(path, folder, command, what)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)  # closing releases the flock
        for parent in created:  # folders made only to hold the lock, when nothing else went there
            with contextlib.suppress(OSError):
                parent.rmdir()


def _acquire(path: Path, folder: Path, command: str, what: str) -> int:
    host = socket.gethostname()
    if (path.exists() or path.is_symlink()) and (path.is_symlink() or not path.is_file()):
        raise UserError(
            f"{str(path)!r}, where the lock of the {what} {str(folder)!r} goes, is not a lock file (a folder or a "
            "link); currimix never makes one like that. Move it away"
        )
    for _ in range(20):  # each retry follows a holder releasing in between: a handful at most
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd) or {}
            os.close(fd)
            raise UserError(
                f"the {what} {str(folder)!r} is in use by {_holder_text(holder)}: one process writes a "
                f"{what} at a time. Wait for it to finish, or choose another folder"
            ) from None
        except OSError:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the file between our open and our flock
            os.close(fd)
            continue
        previous = _read(fd)
        if previous:
            pid, other_host = previous.get("pid"), previous.get("host")
            if other_host != host:
                os.close(fd)
                raise UserError(
                    f"the {what} {str(folder)!r} is locked by {_holder_text(previous)}, another host, whose "
                    f"process this host cannot check. If it is no longer running, remove {str(path)!r}"
                )
            alive = isinstance(pid, int) and pid_alive(pid)
            print(
                f"note: taking over the stale lock {str(path)!r} of {_holder_text(previous)}: "
                + ("that process id now belongs to another program" if alive else "that process is gone"),
                file=sys.stderr,
            )
        record = {"pid": os.getpid(), "host": host, "command": command, "started": time.time()}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode())
        return fd
    raise UserError(f"could not take the lock {str(path)!r}: other processes keep taking and releasing it")
