"""The one check of a path a user names (a recipe, a preset, an output file, a sweep size): NUL bytes,
length, what is there (file, folder, FIFO, dangling symbolic link) and under which root it lies,
each refused as a `UserError` in one message style: ``<what> '<path>' <problem>; <fix>``.

Python's own calls fail on such paths in unhelpful ways: ``Path.is_file`` says False for a folder,
a FIFO and a missing file alike (so all three read "does not exist"), a NUL byte raises ValueError
and a 300-character folder name raises OSError(ENAMETOOLONG) from deep inside a library.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Literal

from curriculum.errors import UserError

# Linux limits (NAME_MAX, PATH_MAX); other systems have the same or larger ones in practice.
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4095

# One plain folder or file name: no separators, no `..`, not hidden, not empty.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")

Kind = Literal["file", "folder", "any"]


def check_plain_name(name: str, what: str) -> str:
    """``name`` is one plain file or folder name (letters, digits, '.', '_', '-'; not starting with '.'),
    so that joining it to a folder can never leave that folder (``..``, ``/abs``, ``a/b``)."""
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise UserError(
            f"{what} {name!r} must be one plain name: letters, digits, '.', '_' or '-', not starting with '.', "
            "at most 128 characters"
        )
    return name


def check_path_text(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` can be handed to the operating system: no NUL byte, no name over 255 bytes, not over
    4095 bytes in all, and no leading ``~`` (never expanded outside a shell)."""
    text = os.fspath(path)
    if "\0" in text:
        raise UserError(f"{what} {text!r} contains a NUL byte, which no file name may hold")
    if text == "~" or text.startswith("~/"):  # a shell expands it; here it would be a folder named '~'
        raise UserError(
            f"{what} {text!r} starts with '~', which only a shell expands (currimix would create a folder "
            f"named '~'); write the full path, e.g. {os.path.expanduser(text)!r}"
        )
    encoded = os.fsencode(text)
    if len(encoded) > PATH_MAX_BYTES:
        raise UserError(f"{what} is {len(encoded)} bytes long, over the {PATH_MAX_BYTES}-byte limit of a path")
    long = next((part for part in encoded.split(b"/") if len(part) > NAME_MAX_BYTES), None)
    if long is not None:
        raise UserError(
            f"{what} holds a name of {len(long)} bytes ({os.fsdecode(long[:40])!r}...), over the "
            f"{NAME_MAX_BYTES}-byte limit of one file or folder name; choose a shorter name"
        )
    return Path(text)


def describe(path: Path) -> str:
    """What is at ``path``, in words (for messages): 'a file', 'a folder', 'a FIFO (named pipe)', ..."""
    try:
        mode = path.lstat().st_mode
    except OSError:  # missing, a file where a folder should be, a link loop on the way
        return "nothing"
    if stat.S_ISLNK(mode):
        target = os.readlink(path)
        return f"a symbolic link to {target!r}" + ("" if path.exists() else ", which does not exist")
    kinds = {
        stat.S_ISREG: "a file",
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO (named pipe)",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    return next((name for test, name in kinds.items() if test(mode)), "a special file")


def check_input_path(path: str | os.PathLike[str], what: str, kind: Kind = "file", under: Path | None = None) -> Path:
    """A path to read from: it exists and is a regular file (``kind="file"``) or a folder, following
    symbolic links, and (with ``under``) resolves inside that folder. Returns it as a Path."""
    path = check_path_text(path, what)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        found = describe(path)
        if found.startswith("a symbolic link"):
            raise UserError(f"{what} {str(path)!r} is {found}") from None
        blocker = next((p for p in path.parents if os.path.lexists(p) and not p.is_dir()), None)
        if blocker is not None:
            raise UserError(f"{what} {str(path)!r} does not exist: {str(blocker)!r} is a file, not a folder") from None
        raise UserError(f"{what} {str(path)!r} does not exist") from None
    except OSError as exc:
        raise UserError(f"{what} {str(path)!r} cannot be read: {exc.strerror}") from None
    wanted = {"file": stat.S_ISREG, "folder": stat.S_ISDIR}.get(kind)
    if wanted is not None and not wanted(mode):
        raise UserError(
            f"{what} {str(path)!r} is {describe(path.resolve())}, not {'a file' if kind == 'file' else 'a folder'}"
        )
    if under is not None:
        check_under(path, under, what)
    return path


def resolved(path: Path, what: str) -> Path:
    """``path`` with symbolic links followed, or a UserError for a link loop (Python raises RuntimeError)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        raise UserError(f"{what} {str(path)!r} goes through a loop of symbolic links") from None


def check_under(path: Path, root: Path, what: str) -> Path:
    """``path`` (symbolic links followed) lies inside ``root``."""
    resolved_path, root = resolved(path, what), root.resolve()
    if resolved_path != root and root not in resolved_path.parents:
        raise UserError(f"{what} {str(path)!r} lies outside {str(root)!r}")
    return path


def check_output_path(path: str | os.PathLike[str], what: str, inputs: dict[str, Path] | None = None) -> Path:
    """Before any work: a file can be written at ``path`` (it replaces a regular file there). Refused:
    a folder or a FIFO/device at the path, a regular file where a parent folder must be, a nearest
    existing parent folder that this user cannot write into, and (``inputs``: {description: file or
    folder}) the path of an input of the same command or a path inside an input folder."""
    path = check_path_text(path, what)
    target = resolved(path, what)
    for description, source in (inputs or {}).items():
        source = resolved(source, description)
        if target == source:
            raise UserError(f"{what} {str(path)!r} is {description} this command reads; write the output elsewhere")
        if source in target.parents:
            raise UserError(f"{what} {str(path)!r} lies inside {description} ({str(source)!r}); write it elsewhere")
    found = describe(path)
    if found not in ("nothing", "a file"):
        raise UserError(f"{what} {str(path)!r} is {found}; give the name of a regular file to write")
    existing = next((p for p in path.parents if os.path.lexists(p)), Path("."))
    if not existing.is_dir():
        raise UserError(
            f"{what} {str(path)!r} cannot be written: {str(existing)!r} is {describe(existing)}, not a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"{what} {str(path)!r} cannot be written: no permission to write in {str(existing)!r}; "
            "choose another folder or fix its permissions"
        )
    return path
