"""Output side of checkpoint averaging: streaming sharded safetensors and an atomic output folder.

`safetensors.torch.save_file` needs every tensor of a shard in memory at once. Averaging knows
every output tensor's name, dtype and shape before it computes any of them, so the header (and
each tensor's offset) can be written first and the data appended chunk by chunk as it is
produced: memory stays at one chunk, whatever the shard size. The files are plain safetensors
(8-byte little-endian header length, JSON header padded with spaces to 8 bytes, raw data) and
are re-opened with `safe_open` after writing as a check.

`atomic_output_dir` builds the whole folder under a hidden temporary name next to the target and
renames it into place only when everything is written and synced, so an interrupted run never
leaves a folder that looks like a finished model. It holds the output folder's lock while it
writes (`curriculum.locks`: two `average` runs never write one output), and ``overwrite`` replaces
only an earlier averaged model (its ``currimix.json`` says kind ``average``) or an empty folder:
never a run's checkpoints, a token store or any other folder.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import struct
import threading
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import torch
from safetensors import safe_open

from curriculum.errors import UserError
from curriculum.files import temp_name
from curriculum.locks import folder_lock
from tools.average.inputs import SAFETENSORS_DTYPES, tensor_nbytes
from tools.train.checkpoint import MARKER_FILE, normalise_permissions

DTYPE_CODES = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}
WRITEBACK_BYTES = 64 << 20
SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
}


def parse_size(size: str | int) -> int:
    """Bytes in ``size``: an int or a string like "2GB" (10^9, as transformers) or "512MiB"."""
    if isinstance(size, int):
        value = size
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", size, flags=re.IGNORECASE)
        if not match:
            raise UserError(f"shard size {size!r} is not a size like '2GB', '500MB' or '1GiB'")
        value = int(float(match.group(1)) * SIZE_UNITS[(match.group(2) or "").upper()])
    if value <= 0:
        raise UserError(f"shard size must be positive, got {size!r}")
    return value


@dataclass(frozen=True)
class OutputTensor:
    key: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.dtype, self.shape)


def plan_shards(tensors: list[OutputTensor], max_shard_bytes: int) -> list[list[OutputTensor]]:
    """Split tensors, in order, into shards of at most ``max_shard_bytes`` (a bigger tensor gets its own)."""
    shards: list[list[OutputTensor]] = [[]]
    size = 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return shards


def shard_names(count: int) -> list[str]:
    """File names as ``save_pretrained`` gives them."""
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def safetensors_header(tensors: list[OutputTensor], metadata: dict[str, str]) -> bytes:
    """Length prefix + JSON header for ``tensors`` laid out back to back in this order."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for t in tensors:
        header[t.key] = {
            "dtype": DTYPE_CODES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob


class StreamingShardWriter:
    """Writes the planned shards in order; tensors arrive as sequences of 1-D chunks."""

    def __init__(self, folder: Path, shards: list[list[OutputTensor]], metadata: dict[str, str]):
        self.folder = folder
        self.shards = shards
        self.names = shard_names(len(shards))
        self.metadata = metadata
        self._order = [(i, t) for i, shard in enumerate(shards) for t in shard]
        self._next = 0  # index into _order of the tensor being written
        self._left = 0  # bytes still owed to it
        self._shard = -1
        self._file: BinaryIO | None = None
        self._flushed = 0  # file offset up to which writeback has been started

    def begin(self, key: str) -> None:
        assert self._left == 0, "previous tensor incomplete"
        shard, t = self._order[self._next]
        assert t.key == key, (t.key, key)
        if shard != self._shard:
            self._finish_shard()
            self._shard = shard
            self._file = open(self.folder / self.names[shard], "wb")
            self._file.write(safetensors_header(self.shards[shard], self.metadata))
        self._left = t.nbytes
        self._next += 1

    def write(self, chunk: torch.Tensor) -> None:
        assert chunk.device.type == "cpu" and chunk.is_contiguous()
        data = chunk.reshape(-1).view(torch.uint8).numpy()
        assert data.nbytes <= self._left, "more bytes than the header promised"
        self._file.write(memoryview(data))  # type: ignore[union-attr]
        self._left -= data.nbytes
        self._start_writeback()

    def _start_writeback(self, force: bool = False) -> None:
        """Start writing finished pages to disk now, so the final fsync has little left to do.

        POSIX_FADV_DONTNEED on Linux starts asynchronous writeback of a range's dirty pages and drops
        its clean ones, which also keeps a multi-GB output from pushing the inputs out of the cache.
        The range reaches back one window so pages written back since the last call are dropped.
        """
        pos = self._file.tell()  # type: ignore[union-attr]
        if not hasattr(os, "posix_fadvise") or (pos - self._flushed < WRITEBACK_BYTES and not force):
            return
        start = max(0, self._flushed - WRITEBACK_BYTES)
        os.posix_fadvise(self._file.fileno(), start, pos - start, os.POSIX_FADV_DONTNEED)  # type: ignore[union-attr]
        self._flushed = pos

    def close(self) -> None:
        """Finish the last shard, then check every shard reads back with the planned tensors."""
        assert self._next == len(self._order) and self._left == 0, "not every tensor was written"
        self._finish_shard()
        for name, shard in zip(self.names, self.shards):
            with safe_open(str(self.folder / name), framework="pt") as f:
                assert set(f.keys()) == {t.key for t in shard}, name

    def _finish_shard(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            self._flushed = 0

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class BackgroundWriter:
    """Runs a `StreamingShardWriter` on its own thread, so disk writes overlap the summing.

    `begin` and `write` queue work (at most ``depth`` items, which bounds memory); ``done`` is
    called once a chunk is on its way to disk, so the caller can reuse the buffer. An error on the
    writer thread is raised again by the next call in the caller's thread.
    """

    def __init__(self, writer: StreamingShardWriter, depth: int):
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="average-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            method, arg, done = item
            try:
                if self._error is None:
                    getattr(self.writer, method)(arg)
            except BaseException as exc:  # re-raised in the caller's thread, KeyboardInterrupt included
                self._error = exc
            finally:
                if done is not None:
                    done()

    def _put(self, method: str, arg: object, done: Callable[[], None] | None) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((method, arg, done))

    def begin(self, key: str) -> None:
        self._put("begin", key, None)

    def write(self, chunk: torch.Tensor, done: Callable[[], None] | None = None) -> None:
        self._put("write", chunk, done)

    def stop(self, raise_error: bool = True) -> None:
        """Wait for queued work, stop the thread, and raise its error if it had one."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if raise_error and self._error is not None:
            raise self._error


def write_index(folder: Path, shards: list[list[OutputTensor]], metadata: dict[str, object]) -> None:
    """``model.safetensors.index.json`` as ``save_pretrained`` writes it (only for several shards)."""
    names = shard_names(len(shards))
    if len(names) == 1:
        return
    index = {
        "metadata": {"total_size": sum(t.nbytes for s in shards for t in s), **metadata},
        "weight_map": {t.key: name for name, shard in zip(names, shards) for t in shard},
    }
    write_json(folder / "model.safetensors.index.json", index)


def write_json(path: Path, data: object) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_averaged_model(folder: Path) -> bool:
    """Whether ``folder`` is an averaged model written by currimix (its marker says kind ``average``)."""
    try:
        marker = json.loads((folder / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("kind") == "average"


def check_output_folder(output: Path, overwrite: bool) -> None:
    """The output folder can be created: it does not exist (or may be replaced: an earlier averaged
    model or an empty folder, and only with ``overwrite``), and no existing part of its path is a
    regular file."""
    if output.exists() and not overwrite:
        raise UserError(f"{output} already exists; choose another --output or pass --overwrite to replace it")
    if output.exists() and not output.is_dir():
        raise UserError(f"{output} exists and is not a folder")
    if output.is_dir() and not is_averaged_model(output) and any(output.iterdir()):
        raise UserError(
            f"{output} is not an averaged model written by `currimix average` (no {MARKER_FILE} of kind "
            "'average' in it), so --overwrite will not replace it: it may be a run's checkpoints, a token store "
            "or your own files. Choose a new --output folder"
        )
    blocker = next((p for p in output.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"cannot create the output folder {output}: {blocker} is a file, not a folder")


@contextmanager
def atomic_output_dir(output: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a hidden temporary folder beside ``output``; rename it to ``output`` on success.

    On any error or interrupt the temporary folder is removed. With ``overwrite`` an existing
    ``output`` (an earlier averaged model) is replaced only after the new one is complete. The
    output folder's lock is held throughout.
    """
    output = Path(output).absolute()
    check_output_folder(output, overwrite)
    with ExitStack() as stack:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(folder_lock(output, "average", "output folder"))
            check_output_folder(output, overwrite)  # again, under the lock: another run may have written it since
            tmp = temp_name(output)
            tmp.mkdir()
        except OSError as exc:
            raise UserError(f"cannot write the output folder {output}: {exc.strerror or exc}") from None
        try:
            yield tmp
            normalise_permissions(tmp)  # every file and folder follows the umask, like the rest of a run
            _fsync_dir(tmp)
            if output.exists():
                old = output.parent / f".{output.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(output, old)
                os.rename(tmp, output)
                shutil.rmtree(old)
            else:
                os.rename(tmp, output)
            _fsync_dir(output.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
