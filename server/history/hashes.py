"""Model file hashes as the WebUI writes them into its infotext.

- ``Model hash``: AutoV2, the first 10 hex digits of the file's sha256.
- ``Lora hashes``: the first 12 hex digits of the sha256 of a .safetensors file's
  tensor data (after its JSON header: the "addnet" hash, unchanged when only
  the header's metadata is edited); other files hash whole.
- ``TI hashes`` (embeddings): the first 12 hex digits of the whole file's sha256.

A checkpoint's sha256 reads gigabytes, so each is computed once per file, in
the history's worker thread (never on the event loop), and kept in the history
database by (path, size, modification time): a replaced file is hashed again.
A diffusers folder has no single file; its UNet weights stand for it.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Protocol

CHUNK = 1 << 20
MODEL, LORA, EMBEDDING = "autov2", "addnet", "sha256"
_LENGTHS = {MODEL: 10, LORA: 12, EMBEDDING: 12}
_UNET_FILES = ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors")


class HashCache(Protocol):
    def cached_hash(self, path: str, size: int, mtime_ns: int, kind: str) -> str | None: ...

    def remembered_hash(self, path: str, size: int, mtime_ns: int, kind: str) -> str | None: ...

    def remember_hash(self, path: str, size: int, mtime_ns: int, kind: str, value: str) -> None: ...


def sha256_file(path: Path, skip_header: bool = False) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if skip_header:
            (length,) = struct.unpack("<Q", f.read(8))
            f.seek(8 + length)
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def weights_file(path: Path) -> Path | None:
    """The file whose hash names a model: the file itself, or a diffusers folder's UNet."""
    if path.is_file():
        return path
    return next((path / f for f in _UNET_FILES if (path / f).is_file()), None)


def known_hash(path: Path, kind: str, cache: HashCache) -> str | None:
    """The short hash of the model at ``path`` if this process has seen it, without reading
    the file or waiting for the database (a stat and a lookup): for a job's result, which
    must not wait for a hash."""
    target = weights_file(path)
    if target is None:
        return None
    stat = target.stat()
    return cache.remembered_hash(str(target.resolve()), stat.st_size, stat.st_mtime_ns, kind)


def short_hash(path: Path, kind: str, cache: HashCache) -> str | None:
    """The WebUI's short hash of the model at ``path`` (MODEL or LORA); None when there
    is no file to hash."""
    target = weights_file(path)
    if target is None:
        return None
    stat = target.stat()
    key = str(target.resolve())
    found = cache.cached_hash(key, stat.st_size, stat.st_mtime_ns, kind)
    if found is not None:
        return found
    value = sha256_file(target, skip_header=kind == LORA and target.suffix == ".safetensors")[: _LENGTHS[kind]]
    cache.remember_hash(key, stat.st_size, stat.st_mtime_ns, kind, value)
    return value
