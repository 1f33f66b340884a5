"""Images in, uint8 tensors out: find the data, decode it once, split it, augment whole batches.

The training loop never touches PIL. Every photo is decoded once, the paper's way (shorter
side 256, centre 256x256 crop), into one (N, 3, 256, 256) uint8 tensor that is cached on
disk between runs (3,667 flowers = 720 MB). Augmentations are `f(images) -> images` over a
whole batch, on whichever device holds it, as in cifar10-airbench:

    crops = random_crop_flip(batch_uint8, 227, gen)          # (B, 3, 227, 227) uint8
    x = pca_lighting(crops.float() / 255, eigvals, eigvecs, 0.1, gen)
    x = normalize(x, mean, std)                              # (B, 3, 227, 227) float

Data comes from `--data DIR`, else $ALEXNET_DATA, else the full flower set prepared in the cache
(TensorFlow's flower_photos.tgz, downloaded only when asked for: `--data flowers-full` or the page's
button), else ../shared/data/flower_photos_256 beside a clone, else the flowers pack shipped in
assets/ (alexnet.pack: 500 credited photos in one file), so every feature works offline.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from alexnet.download import DownloadError, download
from alexnet.errors import UserError
from alexnet.files import atomic_write_bytes, atomic_write_text, cache_dir, sha256_file
from alexnet.images import PREPARE_SIZE, ImageError, center_crop, normalize, open_image, square_resize  # center_crop, normalize: re-exported
from alexnet.pack import PACK_FILE, is_pack, read_pack

__all__ = ["Decoded", "DataError", "Source", "find_data", "find_data_dir", "FULL", "download_flowers", "prepare_archive", "list_images",
           "decode_folder", "stratified_split", "stratified_subset", "rgb_stats", "normalize", "center_crop", "random_crop_flip",
           "pca_lighting"]

ENV_VAR = "ALEXNET_DATA"
REPO = Path(__file__).resolve().parent.parent
SHARED_FLOWERS = REPO.parent / "shared" / "data" / "flower_photos_256"
FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
# Size and SHA-256 as listed by tensorflow_datasets/url_checksums/tf_flowers.txt.
FLOWERS_BYTES = 228_813_984
FLOWERS_SHA256 = "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
PREPARED_MARK = ".prepared.json"  # written last by `prepare_archive`: its presence means "complete"
_CACHE_VERSION = 1                  # bump when decoding changes, so stale caches are not reused


class DataError(UserError):
    """A data folder or download that cannot be used; the message names the path and the fix."""


@dataclass
class Decoded:
    """A whole image folder, decoded once."""
    images: torch.Tensor              # (N, 3, S, S) uint8, S = 256 by default
    labels: torch.Tensor              # (N,) int64, indices into `classes`
    classes: list[str]                # sorted sub-folder names, as torchvision's ImageFolder
    paths: list[str]                  # str path of each kept image, same order as `images`
    skipped: list[tuple[str, str]]    # (path, reason) for files that could not be decoded
    key: str = ""                     # hash of file list + sizes + mtimes + size: names caches built on it
    root: str = ""
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- where the data is

@dataclass(frozen=True)
class Source:
    """Which image set is in use, and why: a folder, or the flowers pack file (alexnet.pack)."""
    path: Path
    origin: str                       # FROM_FLAG, FROM_ENV, FROM_CACHE, FROM_SHARED or FROM_PACK

    @property
    def is_pack(self) -> bool:
        return self.origin == FROM_PACK

    def describe(self) -> str:
        """One line for the page: which set, how big, and how to get the full one."""
        if self.is_pack:
            return (f"{read_pack(self.path).describe}; the full set is a {FLOWERS_BYTES / 2**20:.0f} MB download, "
                    f"or start with --data DIR for your own photos")
        paths, _, classes = list_images(self.path)
        why = {FROM_FLAG: "--data", FROM_ENV: f"${ENV_VAR}", FROM_CACHE: "the full flower set, downloaded",
               FROM_SHARED: "the full flower set beside this clone"}[self.origin]
        return f"{self.path.name}: {len(paths):,} images in {len(classes)} classes ({why})"


FROM_FLAG, FROM_ENV, FROM_CACHE, FROM_SHARED, FROM_PACK = "flag", "env", "cache", "shared", "pack"
FULL = "flowers-full"     # as --data: the full flower set, downloaded (once) if it is not prepared yet
IGNORE_SHARED = "ALEXNET_IGNORE_SHARED"   # =1: behave as an installed copy that has no ../shared beside it


def find_data(data: str | os.PathLike | None = None) -> Source:
    """The image set to use, first match wins: `data` (--data), $ALEXNET_DATA, the full flower set
    prepared in the cache, ../shared/data/flower_photos_256 beside a clone, the shipped flowers pack.

    Nothing is downloaded here unless `data` is FULL: the full set (218 MB) comes only when asked for.
    """
    if data and str(data) == FULL:
        return Source(download_flowers(), FROM_CACHE)
    if data:
        return Source(_check(Path(data).expanduser(), "--data"), FROM_FLAG)
    if os.environ.get(ENV_VAR):
        return Source(_check(Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"), FROM_ENV)
    prepared = cache_dir() / "data" / "flower_photos_256"
    if (prepared / PREPARED_MARK).exists():
        return Source(prepared, FROM_CACHE)
    if SHARED_FLOWERS.is_dir() and os.environ.get(IGNORE_SHARED, "") in ("", "0"):
        return Source(SHARED_FLOWERS, FROM_SHARED)
    return Source(PACK_FILE, FROM_PACK)


def find_data_dir(data: str | os.PathLike | None = None) -> Path:
    """`find_data(data).path`: an image folder, or the flowers pack file (decode_folder reads both)."""
    return find_data(data).path


def _check(path: Path, given_by: str) -> Path:
    if not (path.is_dir() or is_pack(path)):
        raise DataError(f"{given_by} points at {path}, which is not a folder. Give an image folder with one "
                        f"sub-folder per class (--data DIR or {ENV_VAR}=DIR).")
    return path


# ---------------------------------------------------------------- download and prepare (online only)

def flowers_url() -> str:
    """The flowers archive's address; $ALEXNET_FLOWERS_URL points it at a mirror or a file:// copy."""
    return os.environ.get("ALEXNET_FLOWERS_URL") or FLOWERS_URL


def download_flowers(dest: str | os.PathLike | None = None, progress: bool = True, url: str | None = None,
                     sha256: str | None = FLOWERS_SHA256, report=None) -> Path:
    """TensorFlow's flower_photos.tgz (218 MB, 5 classes), checked and prepared once; returns the folder.

    The prepared folder is `<dest>/flower_photos_256` (dest defaults to the cache's data/);
    a second call finds it and returns at once. `report(stage, done, total)` follows the download
    (stage "download", bytes) and the preparation (stage "prepare", images), for the page.
    """
    url = url or flowers_url()
    dest = Path(dest) if dest else cache_dir() / "data"
    out = dest / "flower_photos_256"
    if (out / PREPARED_MARK).exists():
        return out
    dest.mkdir(parents=True, exist_ok=True)
    tgz = dest / "flower_photos.tgz"
    if not (tgz.exists() and (sha256 is None or sha256_file(tgz) == sha256)):
        _download(url, tgz, sha256, progress, None if report is None else lambda d, t: report("download", d, t))
    prepare_archive(tgz, out, progress=progress, report=None if report is None else lambda d, t: report("prepare", d, t))
    return out


def _download(url: str, path: Path, sha256: str | None, progress: bool, report=None) -> None:
    """Stream `url` to `path` with a progress bar; the file appears only if its checksum is right."""
    try:
        download(url, path, sha256=sha256, bar=progress, report=report)
    except DownloadError as e:
        raise DataError(download_failed(e.cause)) from e


def download_failed(cause: str) -> str:
    """The one sentence a failed flowers download gets, in the UI, the API and the CLI alike."""
    return (f"Could not download the flower photos ({cause}). The shipped flowers pack is in use; to use "
            f"your own photos start with --data DIR (or set ${ENV_VAR}=DIR).")


def prepare_archive(tgz: str | os.PathLike, out: str | os.PathLike, size: int = PREPARE_SIZE,
                    progress: bool = True, report=None) -> tuple[Path, list[tuple[str, str]]]:
    """Unpack an ImageFolder .tgz (`top/<class>/<image>`) into `out`, each image prepared the paper's way.

    Shorter side to `size`, centre `size` x `size` crop, saved as JPEG quality 95. Entries are
    read as bytes, never extracted, so odd member names cannot write outside `out`. Unreadable
    images are skipped and listed in the returned report (and in `out/.prepared.json`).
    """
    from tqdm import tqdm
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    kept, skipped = 0, []
    try:
        with tarfile.open(tgz, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            for i, m in enumerate(tqdm(members, desc=f"preparing {Path(tgz).name}", unit="img", disable=not progress)):
                if report is not None and i % 50 == 0:
                    report(i, len(members))
                parts = Path(m.name).parts
                if Path(m.name).is_absolute() or ".." in parts:
                    skipped.append((m.name, "a path outside the archive's folder"))
                    continue
                if len(parts) == 2 and parts[-1].lower() in ("license.txt", "licence.txt"):
                    tmp.mkdir(parents=True, exist_ok=True)
                    (tmp / parts[-1]).write_bytes(tar.extractfile(m).read())
                    continue
                if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_EXTENSIONS):
                    continue
                cls, name = parts[1], Path(parts[-1]).stem + ".jpg"     # top/<class>/.../<image>
                if cls.startswith(".") or name.startswith("."):         # hidden folders and files
                    continue
                try:
                    img = square_resize(open_image(tar.extractfile(m).read()), size)
                except ImageError as e:
                    skipped.append((m.name, str(e)))
                    continue
                (tmp / cls).mkdir(parents=True, exist_ok=True)
                img.save(tmp / cls / name, quality=95)
                kept += 1
    except (tarfile.TarError, OSError, EOFError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"{Path(tgz).name} is not a readable .tgz archive ({e})") from e
    if kept == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"{Path(tgz).name} holds no readable images in <top>/<class>/<image> layout")
    atomic_write_text(tmp / PREPARED_MARK, json.dumps(dict(source=str(tgz), size=size, images=kept,
                                                           skipped=skipped), indent=1))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out, skipped


# ---------------------------------------------------------------- decode once, cache on disk

def list_images(root: str | os.PathLike) -> tuple[list[Path], list[int], list[str]]:
    """ImageFolder's listing: (sorted image paths, their class indices, sorted class names).

    The flowers pack (a file, alexnet.pack) lists its photos as paths under the pack file."""
    root = Path(root)
    if is_pack(root):
        pack = read_pack(root)
        return [root / f for f in pack.files], pack.labels.tolist(), list(pack.classes)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist (set it with --data DIR or {ENV_VAR}=DIR)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for i, c in enumerate(classes):
        files = sorted(p for p in (root / c).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        paths += files
        labels += [i] * len(files)
    if not paths:
        raise DataError(f"{root} holds no images: expected one sub-folder per class, each with "
                        f"{', '.join(IMAGE_EXTENSIONS[:3])}... files")
    classes_used = sorted({classes[i] for i in labels})
    if len(classes_used) < len(classes):
        empty = sorted(set(classes) - set(classes_used))
        raise DataError(f"{root}: class folder(s) {', '.join(empty)} hold no images; remove them or add images")
    return paths, labels, classes


def _cache_key(root: Path, paths: list[Path], size: int) -> str:
    """Changes when any file is added, removed, resized or touched, or when `size` changes."""
    h = hashlib.sha256(f"v{_CACHE_VERSION} {root.resolve()} {size}\n".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.relative_to(root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _decode_one(path: Path, size: int) -> np.ndarray | str:
    """(size, size, 3) uint8, or the reason it could not be read."""
    try:
        return np.array(square_resize(open_image(path), size), dtype=np.uint8)
    except ImageError as e:
        return str(e)


def decode_folder(root: str | os.PathLike, size: int = PREPARE_SIZE, cache: bool = True, progress=None) -> Decoded:
    """Every image under `root` as one uint8 tensor; unreadable files are skipped and listed, never fatal.

    `progress(done, total)` is called as images are decoded. With `cache`, the result is kept
    under cache_dir()/decoded/, keyed by the file list, sizes, mtimes and `size`, so a second
    run (or a second process) loads 720 MB in a second instead of decoding for a minute.
    `root` may also be the flowers pack file (alexnet.pack), decoded the same way in about a second.
    """
    root = Path(root)
    if is_pack(root):
        return _decode_pack(root, size, progress)
    paths, labels, classes = list_images(root)
    key = _cache_key(root, paths, size)
    cache_file = cache_dir() / "decoded" / f"{root.name}-{size}-{key}.safetensors"
    if cache and cache_file.exists():
        try:
            return _load_decoded(cache_file, root, key)
        except Exception as e:  # safetensors has its own error types; a cache is only a cache
            warnings.warn(f"ignoring the damaged decode cache {cache_file.name} ({e}); decoding again")
    images = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    kept, kept_labels, skipped = [], [], []
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)   # PIL releases the GIL while decoding
    try:
        for i, (p, result) in enumerate(zip(paths, pool.map(lambda p: _decode_one(p, size), paths))):
            if isinstance(result, str):
                skipped.append((str(p), result))
            else:
                images[len(kept)] = torch.from_numpy(result).permute(2, 0, 1)  # (S, S, 3) -> (3, S, S)
                kept.append(str(p))
                kept_labels.append(labels[i])
            if progress is not None:
                progress(i + 1, len(paths))      # may raise to stop early (the trainer's cancel)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if not kept:
        raise DataError(f"none of the {len(paths)} images under {root} could be read; first problem: "
                        f"{skipped[0][0]}: {skipped[0][1]}")
    out = Decoded(images[:len(kept)].clone() if skipped else images, torch.tensor(kept_labels, dtype=torch.int64),
                  classes, kept, skipped, key, str(root))
    if cache:
        _save_decoded(cache_file, out)
    return out


def _decode_pack(path: Path, size: int, progress=None) -> Decoded:
    """The flowers pack (alexnet.pack) decoded the folder's way (shorter side `size`, centre crop)."""
    pack = read_pack(path)
    images = torch.empty((len(pack), 3, size, size), dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=2) as pool:          # PIL releases the GIL while decoding
        decoded = pool.map(lambda i: np.asarray(square_resize(open_image(pack.jpeg(i)), size)), range(len(pack)))
        for i, hwc in enumerate(decoded):
            images[i] = torch.from_numpy(hwc).permute(2, 0, 1)   # (S, S, 3) -> (3, S, S)
            if progress is not None:
                progress(i + 1, len(pack))
    root = Path(pack.path)
    return Decoded(images, torch.from_numpy(pack.labels.copy()), list(pack.classes),
                   [str(root / f) for f in pack.files], [], pack.data_key(size), str(root),
                   dict(pack=True, credits=list(pack.credits)))


def _save_decoded(path: Path, d: Decoded) -> None:
    root = Path(d.root)
    meta = dict(classes=json.dumps(d.classes), paths=json.dumps([str(Path(p).relative_to(root)) for p in d.paths]),
                skipped=json.dumps([(str(Path(p).relative_to(root)), r) for p, r in d.skipped]), key=d.key)
    atomic_write_bytes(path, lambda tmp: save_file({"images": d.images, "labels": d.labels}, tmp, metadata=meta))


def _load_decoded(path: Path, root: Path, key: str) -> Decoded:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        images, labels = f.get_tensor("images"), f.get_tensor("labels")
    if meta.get("key") != key:
        raise ValueError("cache key mismatch")
    return Decoded(images, labels, json.loads(meta["classes"]), [str(root / p) for p in json.loads(meta["paths"])],
                   [(str(root / p), r) for p, r in json.loads(meta["skipped"])], key, str(root),
                   dict(cache_file=str(path)))


# ---------------------------------------------------------------- split

def stratified_split(labels, val_fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, val indices), sorted; every class keeps `val_fraction` of its images for val.

    Depends only on (labels, val_fraction, seed), so the sidecar's seed and fraction rebuild
    the same split later (the evaluator does). Classes with a single image stay in train.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction}")
    labels = torch.as_tensor(labels, dtype=torch.int64)
    g = torch.Generator().manual_seed(int(seed))
    train, val = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = min(len(idx) - 1, round(len(idx) * val_fraction)) if len(idx) > 1 else 0
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def stratified_subset(labels, limit: int | None, seed: int = 0) -> torch.Tensor:
    """`limit` indices (sorted) drawn in proportion to each class; all of them when limit is None."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    n = len(labels)
    if limit is None or limit >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    idx, rank = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        idx.append(members[torch.randperm(len(members), generator=g)])
        rank.append(torch.arange(len(members), dtype=torch.float64) / len(members))  # 0, 1/n, 2/n ...
    order = torch.cat(rank).argsort(stable=True)   # interleave classes by their relative position
    return torch.cat(idx)[order][:limit].sort().values


# ---------------------------------------------------------------- batch augmentation

def random_crop_flip(images: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random `size` x `size` window of each image, mirrored left-right with probability 1/2.

    Two gathers over the whole batch (rows, then columns) do crop and flip together: the
    flipped images simply read their columns in reverse order. The generator must live on
    the images' device.
    """
    b, c, h, w = images.shape
    if size > h or size > w:
        raise ValueError(f"cannot crop {size}x{size} from {h}x{w} images")
    dev = images.device
    top = torch.randint(0, h - size + 1, (b, 1), generator=generator, device=dev)
    left = torch.randint(0, w - size + 1, (b, 1), generator=generator, device=dev)
    flip = torch.rand((b, 1), generator=generator, device=dev) < 0.5
    ar = torch.arange(size, device=dev)
    rows = top + ar                                                  # (B, size)
    cols = torch.where(flip, left + size - 1 - ar, left + ar)        # (B, size)
    x = images.gather(2, rows.view(b, 1, size, 1).expand(b, c, size, w))     # (B, C, size, W)
    return x.gather(3, cols.view(b, 1, 1, size).expand(b, c, size, size))    # (B, C, size, size)


def rgb_stats(images: torch.Tensor, indices=None, max_pixels: int = 1_000_000, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per-channel mean and std, and the RGB covariance's eigenvalues (3,) descending and
    eigenvectors (3, 3) as columns, for pixels in 0-1 units.

    Uses `max_pixels` random pixels of images[indices] (the training set), read in place:
    the statistics of 3 numbers converge long before 240 million pixels.
    """
    n, _, h, w = images.shape
    indices = torch.arange(n) if indices is None else torch.as_tensor(indices)
    g = torch.Generator().manual_seed(seed)
    count = min(max_pixels, len(indices) * h * w)
    pick = indices[torch.randint(0, len(indices), (count,), generator=g)].to(images.device)
    ys = torch.randint(0, h, (count,), generator=g).to(images.device)
    xs = torch.randint(0, w, (count,), generator=g).to(images.device)
    pixels = images[pick, :, ys, xs].T                               # (3, count)
    x = pixels.double() / 255.0 if pixels.dtype == torch.uint8 else pixels.double()
    cov = torch.cov(x)                                               # (3, 3)
    eigvals, eigvecs = torch.linalg.eigh(cov)                        # ascending
    return dict(mean=x.mean(1).float(), std=cov.diagonal().sqrt().float(),
                eigvals=eigvals.flip(0).clamp_min(0).float(), eigvecs=eigvecs.flip(1).float())


def pca_lighting(images: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, std: float = 0.1,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's colour augmentation (section 4.1): add sum_i alpha_i sqrt(lambda_i) p_i to every pixel.

    One alpha ~ N(0, std) per image and eigenvector, so an image's whole colour cast shifts
    along the directions in which natural photos vary. The paper writes lambda_i; we scale by
    sqrt(lambda_i), the spread along p_i in the images' own units, so `std` is unit-free
    (0.1 = a tenth of the natural spread) and the shifts' covariance is std^2 times the
    data's RGB covariance. Images are float (B, 3, H, W) in the units `eigvals` came from.
    """
    b = images.shape[0]
    alpha = torch.randn((b, 3), generator=generator, device=images.device) * std        # (B, 3)
    scale = eigvals.to(images.device, torch.float32).clamp_min(0).sqrt()                # (3,)
    shift = (alpha * scale) @ eigvecs.to(images.device, torch.float32).T                # (B, 3) RGB
    return images + shift.view(b, 3, 1, 1).to(images.dtype)                            # same shift at every pixel
