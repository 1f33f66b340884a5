"""Where the project's files live and how they are written: the leaf every other module may import.

- `ASSETS`: the package data shipped with the code (the compact model, the flowers pack, the map).
- `cache_dir()`: checkpoints, feature passes, decoded sets, downloads; $ALEXNET_CACHE overrides.
- `atomic_write_bytes` / `atomic_write_text`: a reader sees the old file or the new one, never half,
  and a killed write leaves the old one in place.
- `sha256_file`: a big file's checksum, read in blocks.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path

# Files the app ships: the repository's assets/, installed as the package alexnet.assets (pyproject.toml),
# found the same way from an editable install and a wheel; pip unpacks wheels, so this is a real folder.
ASSETS = Path(str(resources.files("alexnet.assets")))


def cache_dir() -> Path:
    """Where checkpoints, features and prepared data live; ALEXNET_CACHE overrides."""
    d = Path(os.environ.get("ALEXNET_CACHE") or Path.home() / ".cache" / "alexnet-explainer")
    d.mkdir(parents=True, exist_ok=True)
    return d


def atomic_write_bytes(path: Path, write) -> None:
    """Call `write(tmp_path)`, fsync, then rename over `path`: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())                   # mkstemp makes 0600; a saved file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask, read without setting it (os.umask would change it for every thread for a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))


def sha256_file(path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (an archive or a checkpoint is hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_arrays(path, fmt: str) -> tuple[dict, dict] | None:
    """(metadata, {name: numpy array}) of a safetensors file whose metadata says format `fmt`; None when it is
    missing, of another format, or damaged (a cache is only a cache: the damage is warned about, not raised)."""
    from safetensors import SafetensorError, safe_open
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, SafetensorError, ValueError) as e:
        import warnings
        warnings.warn(f"ignoring the unreadable file {path.name} ({e})")
        return None
    return (meta, arrays) if meta.get("format") == fmt else None
