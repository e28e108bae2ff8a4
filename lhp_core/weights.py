"""Checkpoint weight files: integrity checks and content hashes.

A checkpoint is identified by the sha256 of its tensors (:func:`weights_sha256`), not of its files,
so re-saving or re-sharding the same weights keeps the hash. ``lhp train`` records it per step in
``training_record.nc``; the sweep and the measure runner store it with every result, so a result
can always be traced to the exact weights it came from and a retrained suite never reads stale
results. :func:`check_safetensors` catches truncated or corrupt files from the header alone.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path


class CorruptCheckpoint(OSError):
    """A checkpoint file is truncated or unreadable, or its weights differ from the suite's training record."""


#: How to restore a damaged checkpoint; `lhp train` re-creates a finished model's missing step
#: folders and checks each against the hash in training_record.nc (lhp_core.train.train_model).
RESTORE = (
    "delete that step folder and restore it (a suite made by `lhp train`: re-run `lhp train` with the suite's "
    "--preset and --out, which re-creates missing step folders and checks them against training_record.nc; "
    "a hub suite: delete the revision from the Hugging Face cache and download it again)"
)


#: safetensors dtype codes -> the numpy-style names the hash has always used ("float32", ...).
_DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
                "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
                "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool"}
_READ = 1 << 26  # bytes per read while hashing: memory stays flat however large the checkpoint


def weights_sha256(path: str | Path) -> str:
    """sha256 over a checkpoint's tensors: name, dtype, shape and bytes, sorted by name.

    Hashing tensors rather than files makes the hash independent of safetensors metadata and of
    how the weights were sharded. Tensors are read straight from the files' byte ranges, one
    block at a time, so any dtype (bfloat16 included) hashes and a 7B checkpoint needs no 7B
    of host memory.

    Parameters
    ----------
    path
        A checkpoint folder (all ``*.safetensors`` in it) or one ``.safetensors`` file.
    """
    path = Path(path)
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no *.safetensors file in {path}")
    entries = []
    for f in files:
        n, header = check_safetensors(f)
        for name, v in header.items():
            if name != "__metadata__":
                start, end = v["data_offsets"]
                entries.append((name, f, _DTYPE_NAMES.get(v["dtype"], v["dtype"]), tuple(v["shape"]),
                                8 + n + start, end - start))
    h = hashlib.sha256()
    handles = {}
    try:
        for name, f, dtype, shape, offset, size in sorted(entries):
            fh = handles.get(f) or handles.setdefault(f, open(f, "rb"))  # noqa: SIM115 - closed in finally
            h.update(f"{name}|{dtype}|{shape}|".encode())
            fh.seek(offset)
            while size > 0:
                block = fh.read(min(size, _READ))
                if not block:
                    raise CorruptCheckpoint(f"{f} ends inside tensor {name!r}; {RESTORE}")
                h.update(block)
                size -= len(block)
    finally:
        for fh in handles.values():
            fh.close()
    return h.hexdigest()


def check_safetensors(path: str | Path) -> tuple[int, dict]:
    """Raise :class:`CorruptCheckpoint` if the file's header is unreadable or the file is shorter than it says.

    Cheap (reads the header only): catches truncated downloads and interrupted copies.

    Returns
    -------
    (header length in bytes, header): the JSON header maps tensor names to ``dtype``, ``shape``
    and ``data_offsets`` (relative to the end of the header).
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > size - 8:
                raise ValueError(f"header length {n} exceeds file size {size}")
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CorruptCheckpoint(
            f"checkpoint file {path} is corrupt: unreadable safetensors header ({e}); {RESTORE}"
        ) from e
    if 8 + n + end != size:
        raise CorruptCheckpoint(
            f"checkpoint file {path} is truncated or corrupt: header says {8 + n + end} bytes, "
            f"file has {size}; {RESTORE}"
        )
    return n, header


def loaded_weights_sha256(model) -> str:
    """sha256 over parameter names, shapes and the loaded tensors' float32 values.

    Used when a checkpoint has no safetensors files on disk. Loads in float32 of the same
    weights always agree; a bfloat16 load has rounded the weights, so it hashes differently.
    """
    import torch  # only a caller that already holds a loaded model gets here

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}".encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()
