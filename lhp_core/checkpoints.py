"""Load any suite's checkpoint by step, and hash checkpoint weights."""
from __future__ import annotations

import hashlib
from pathlib import Path


def weights_sha256(path: str | Path) -> str:
    """sha256 over a checkpoint's tensors (name, dtype, shape, bytes; sorted by name)."""
    from safetensors.numpy import load_file

    path = Path(path)
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        tensors = load_file(str(f))
        for name in sorted(tensors):
            a = tensors[name]
            h.update(f"{name}|{a.dtype}|{a.shape}|".encode())
            h.update(a.tobytes())
    return h.hexdigest()
