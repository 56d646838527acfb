"""Checkpoints to average, opened lazily: where the weights are, what each tensor is, and a
zero-copy view of each tensor when it is needed.

Understood layouts (``save_pretrained`` folders, ``currimix train`` snapshots and Accelerate
``save_state`` folders):

- ``model.safetensors`` or sharded ``model-*.safetensors`` + ``model.safetensors.index.json``,
  read with ``safetensors.safe_open`` (memory-mapped; ``get_tensor`` returns a view of the
  mapped file, so reading costs page cache, not private memory);
- ``pytorch_model.bin`` (or sharded + index), read with ``torch.load(mmap=True, weights_only=True)``;
- Accelerate ``save_state`` folders (``model.safetensors`` or ``pytorch_model.bin`` beside
  ``optimizer.bin`` and ``random_states_*.pkl``), whose ``config.json`` lives elsewhere: in
  ``<run>/model_config`` for ``currimix train`` checkpoints, or wherever ``config_from`` says.
  ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) key prefixes are removed.

Tied weights: when the config ties the output embedding to the input embedding,
``save_pretrained`` keeps only the input embedding, while a ``save_state`` folder may hold either
key or both. Every source is mapped to the ``save_pretrained`` convention (tied targets dropped
after checking that they equal their source; a lone target read as its source), so folders of
either kind average together and the output loads tied.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from curriculum.errors import UserError
from tools.train.checkpoint import MARKER_FILE, checkpoint_step, read_marker, verify_folder

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
# Config keys that differ between otherwise identical checkpoints and do not change the model.
# The dtype keys are left to the per-tensor dtype check, which names the tensor.
CONFIG_KEYS_IGNORED = {"_name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype"}
# Compared only when both configs have them: a config saved without a model (e.g. a run's
# model_config) lacks "architectures", which the weights' folders carry.
CONFIG_KEYS_OPTIONAL = {"architectures"}
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def tensor_nbytes(dtype: torch.dtype, shape: tuple[int, ...]) -> int:
    """Bytes of a tensor's data."""
    return math.prod(shape) * dtype.itemsize


@dataclass
class TensorRef:
    """Where one tensor of a checkpoint lives."""

    file: Path
    key: str  # the key inside the file (before prefix stripping and tie mapping)
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int | None = None  # absolute byte offset in a safetensors file; None for .bin

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.dtype, self.shape)


@dataclass
class CheckpointSource:
    """One input checkpoint folder; `tensor` returns zero-copy views of its tensors."""

    folder: Path
    weight_files: list[Path]
    config_dir: Path
    config: dict[str, Any]
    step: int | None
    tensors: dict[str, TensorRef]  # canonical key -> location, in file order
    notes: list[str] = field(default_factory=list)
    _handles: dict[Path, Any] = field(default_factory=dict, repr=False)
    _fds: dict[Path, int] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return str(self.folder)

    def tensor(self, key: str) -> torch.Tensor:
        """The tensor under canonical ``key``, a view of the memory-mapped file."""
        ref = self.tensors[key]
        handle = self._handle(ref.file)
        if isinstance(handle, dict):
            return handle[ref.key]
        return handle.get_tensor(ref.key)

    def prefetch(self, key: str) -> None:
        """Ask the kernel to start reading ``key`` from disk now (no-op when it cannot)."""
        ref = self.tensors[key]
        if ref.offset is None or not hasattr(os, "posix_fadvise"):
            return
        fd = self._fds.get(ref.file)
        if fd is None:
            fd = self._fds[ref.file] = os.open(ref.file, os.O_RDONLY)
        os.posix_fadvise(fd, ref.offset, ref.nbytes, os.POSIX_FADV_WILLNEED)

    def _handle(self, path: Path) -> Any:
        handle = self._handles.get(path)
        if handle is None:
            if path.suffix == ".safetensors":
                handle = safe_open(str(path), framework="pt", device="cpu")
            else:
                handle = _load_bin(path)
            self._handles[path] = handle
        return handle

    def close(self) -> None:
        self._handles.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def open_checkpoint(folder: Path, config_from: Path | None = None) -> CheckpointSource:
    """Open ``folder`` lazily: find its weight files, config and step, and index its tensors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"checkpoint {folder} is not a folder")
    problem = verify_folder(folder) if read_marker(folder) is not None else None
    if problem is not None:  # a currimix folder whose files no longer match its marker's checksums
        raise UserError(f"checkpoint {folder} is damaged: {problem}")
    files = _weight_files(folder)
    config_dir = _config_dir(folder, config_from)
    config = load_config(config_dir)
    step, note = checkpoint_step(folder)
    notes = [note] if note else []

    raw: dict[str, TensorRef] = {}
    for path in files:
        for ref in _safetensors_refs(path) if path.suffix == ".safetensors" else _bin_refs(path):
            if ref.key in raw:
                raise UserError(
                    f"tensor {ref.key!r} is stored twice in {folder}: {raw[ref.key].file.name} and {path.name}"
                )
            raw[ref.key] = ref
    tensors = _strip_wrapper_prefixes(raw, folder, notes)
    source = CheckpointSource(folder, files, config_dir, config, step, tensors, notes)
    _apply_ties(source)
    return source


def load_config(config_dir: Path) -> dict[str, Any]:
    path = config_dir / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no config.json in {config_dir}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} should hold a JSON object")
    model_type = config.get("model_type")
    if model_type is not None and "auto_map" not in config:  # auto_map: a custom architecture, loaded by its code
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

        if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING_NAMES:
            raise UserError(
                f"{path}: model_type {model_type!r} is not a model type transformers knows, so the averaged "
                "model could not be loaded; fix the config (or give a model folder's with --config-from)"
            )
    return config


def _weight_files(folder: Path) -> list[Path]:
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            try:
                weight_map = json.loads(path.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise UserError(f"{path} is not a weight index ({exc!r}); expected {{'weight_map': {{...}}}}") from None
            shards = [folder / s for s in dict.fromkeys(weight_map.values())]
            missing = [s.name for s in shards if not s.is_file()]
            if missing:
                raise UserError(f"{path} lists shards missing from {folder}: {', '.join(missing)}")
            return shards
        return [path]
    if any(folder.glob("pytorch_model_fsdp_*")):
        raise UserError(
            f"{folder} holds an FSDP sharded state; consolidate it first "
            f"(`accelerate merge-weights {folder}/pytorch_model_fsdp_0 OUT`) and average OUT"
        )
    raise UserError(f"no weights in {folder}: looked for {', '.join(WEIGHT_FILES)}")


def _config_dir(folder: Path, config_from: Path | None) -> Path:
    if (folder / "config.json").is_file():
        return folder
    marker = read_marker(folder)
    if marker is not None and marker.get("kind") == "checkpoint":
        run_config = folder.parent.parent / "model_config"
        if (run_config / "config.json").is_file():
            return run_config
    if config_from is not None:
        return Path(config_from)
    raise UserError(
        f"{folder} has no config.json (an Accelerate save_state folder?) and no "
        f"<run>/model_config beside it; pass the model's config folder with --config-from"
    )


# Largest header accepted (safetensors itself refuses headers over 100 MB): a damaged length
# field must not make us allocate gigabytes before the JSON is even parsed.
MAX_HEADER_BYTES = 100_000_000


def _safetensors_refs(path: Path) -> list[TensorRef]:
    """Tensor metadata from the safetensors header, in file order, without touching the data.

    Every length and offset is checked against the file's size first, so a damaged, truncated or
    zero-byte file is a UserError naming it (never a MemoryError or a struct error)."""
    size = path.stat().st_size
    bad = f"{path} is not a complete safetensors file"
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise UserError(f"{bad}: it has {size} bytes, fewer than the 8-byte header length")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(MAX_HEADER_BYTES, size - 8):
            raise UserError(
                f"{bad}: its header length field says {header_len} bytes, the file has {size} (damaged or truncated)"
            )
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{bad} ({exc})") from None
    if not isinstance(header, dict):
        raise UserError(f"{bad}: the header is not a JSON object")
    header.pop("__metadata__", None)
    refs = []
    for key, info in header.items():
        try:
            dtype_code, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise UserError(f"{bad}: the header entry of {key!r} is not {{dtype, shape, data_offsets}}") from None
        dtype = SAFETENSORS_DTYPES.get(dtype_code)
        if dtype is None:
            raise UserError(f"tensor {key!r} in {path} has dtype {dtype_code}, which averaging does not support")
        ref = TensorRef(path, key, dtype, shape, 8 + header_len + begin)
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin and end - begin == ref.nbytes):
            raise UserError(f"{bad}: tensor {key!r} has data offsets {[begin, end]} for {ref.nbytes} bytes")
        if 8 + header_len + end > size:
            raise UserError(
                f"{bad}: tensor {key!r} ends at byte {8 + header_len + end}, the file has {size} (truncated)"
            )
        refs.append(ref)
    return sorted(refs, key=lambda r: r.offset)


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable or unsafe pickles
        raise UserError(f"cannot read {path} as a weights-only torch state dict: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a flat state dict of tensors")
    return state


def _bin_refs(path: Path) -> list[TensorRef]:
    return [TensorRef(path, k, t.dtype, tuple(t.shape)) for k, t in _load_bin(path).items()]


def _strip_wrapper_prefixes(raw: dict[str, TensorRef], folder: Path, notes: list[str]) -> dict[str, TensorRef]:
    """Remove DDP/torch.compile prefixes that every key carries (as in some ``save_state`` folders)."""
    tensors = raw
    changed = True
    while changed and tensors:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in tensors):
                tensors = {k[len(prefix) :]: ref for k, ref in tensors.items()}
                notes.append(f"{folder}: removed the {prefix!r} prefix from every tensor name")
                changed = True
    return tensors


def tied_weights(config: dict[str, Any], config_dir: Path) -> dict[str, str]:
    """{tied target: source} for the model in ``config`` (e.g. lm_head.weight -> embed_tokens), or {}.

    Only models whose config ties embeddings have ties. The names come from the model class
    (imported only then, since importing transformers' modeling code takes seconds).
    """
    tie = config.get("tie_word_embeddings")
    if tie is None:
        from transformers import AutoConfig

        tie = AutoConfig.from_pretrained(config_dir).tie_word_embeddings
    if not tie:
        return {}
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    archs = config.get("architectures") or [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.get("model_type"), "")]
    cls = getattr(transformers, archs[0], None) if archs[0] else None
    if cls is None:
        raise UserError(
            f"{config_dir / 'config.json'} ties embeddings but names no architecture or causal-LM model_type "
            f"transformers knows ({archs}, {config.get('model_type')!r}); cannot tell which tensors are tied"
        )
    ties = getattr(cls, "_tied_weights_keys", None)
    if isinstance(ties, dict):
        return dict(ties)
    # Older transformers list only the targets; ask a weightless (meta) model for the source.
    from transformers import AutoConfig

    with torch.device("meta"):
        model = cls(AutoConfig.from_pretrained(config_dir))
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    out_name = names.get(id(model.get_output_embeddings().weight))
    in_name = next(n for n, p in model.named_parameters() if p is model.get_input_embeddings().weight)
    return {out_name: in_name} if out_name and out_name != in_name else {}


def _apply_ties(source: CheckpointSource) -> None:
    ties = tied_weights(source.config, source.config_dir)
    for target, tied_to in ties.items():
        if target not in source.tensors:
            continue
        target_ref = source.tensors.pop(target)
        if tied_to not in source.tensors:
            source.tensors[tied_to] = target_ref
            source.notes.append(f"{source.folder}: read tied {target!r} as {tied_to!r}")
            continue
        a, b = source.tensor(tied_to), source._handle(target_ref.file)
        b = b[target_ref.key] if isinstance(b, dict) else b.get_tensor(target_ref.key)
        if a.shape != b.shape or not torch.equal(a, b):
            raise UserError(
                f"the config ties {target!r} to {tied_to!r}, but in {source.folder} they differ; "
                f"untie them in config.json (tie_word_embeddings: false) if the model was trained untied"
            )


def check_compatible(sources: list[CheckpointSource]) -> None:
    """Raise one UserError listing every key, shape, dtype and config mismatch, naming files and tensors."""
    problems: list[str] = []
    first = sources[0]
    for other in sources[1:]:
        for key in sorted(set(first.config) | set(other.config)):
            if key in CONFIG_KEYS_IGNORED:
                continue
            a, b = first.config.get(key, "<missing>"), other.config.get(key, "<missing>")
            if key in CONFIG_KEYS_OPTIONAL and "<missing>" in (a, b):
                continue
            if a != b:
                problems.append(
                    f"config key {key!r} is {a!r} in {first.config_dir / 'config.json'} "
                    f"but {b!r} in {other.config_dir / 'config.json'}"
                )
    all_keys = dict.fromkeys(k for s in sources for k in s.tensors)
    for key in all_keys:
        holders = [s for s in sources if key in s.tensors]
        if len(holders) != len(sources):
            lacking = [s.label for s in sources if key not in s.tensors]
            problems.append(f"tensor {key!r} is in {holders[0].label} but missing from {', '.join(lacking)}")
            continue
        ref0 = first.tensors[key]
        for other in sources[1:]:
            ref = other.tensors[key]
            if ref.shape != ref0.shape:
                problems.append(
                    f"tensor {key!r} has shape {list(ref0.shape)} in {ref0.file} but {list(ref.shape)} in {ref.file}"
                )
            if ref.dtype != ref0.dtype:
                problems.append(
                    f"tensor {key!r} has dtype {_dtype_name(ref0.dtype)} in {ref0.file} "
                    f"but {_dtype_name(ref.dtype)} in {ref.file}"
                )
    if problems:
        shown = problems[:25] + ([f"... and {len(problems) - 25} more"] if len(problems) > 25 else [])
        raise UserError(f"the {len(sources)} checkpoints do not match, so they cannot be averaged:", shown)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


__all__ = ["CheckpointSource", "TensorRef", "open_checkpoint", "check_compatible", "tied_weights", "MARKER_FILE"]
