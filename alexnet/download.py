"""One streaming download for every file the project fetches (the flowers archive, ImageNet weights).

The file appears at its path only when it is complete and its checksum is right (written to a
temporary file, then renamed); progress goes to a tqdm bar and/or a `report(done, total)` callback
(the app's page). Every failure is a `DownloadError` whose `cause` is short enough for a sentence.
"""
from __future__ import annotations

import hashlib
import http.client
import socket
import urllib.error
import urllib.request
from pathlib import Path

from alexnet.files import atomic_write_bytes

TIMEOUT_S = 30        # per socket operation: a dead network fails in seconds, a slow one still downloads


class DownloadError(OSError):
    """A download that could not happen or broke off; `cause` says why in a few words."""

    def __init__(self, message: str, cause: str):
        super().__init__(message)
        self.cause = cause


def _cause(e: BaseException, url: str = "") -> str:
    if url.startswith("file:"):
        return f"cannot read {url}: {getattr(e, 'reason', e)}"
    reason = getattr(e, "reason", e)
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError, TimeoutError, socket.timeout)):
        return f"no network? {type(reason).__name__}"
    if isinstance(e, urllib.error.HTTPError):
        return f"the server answered HTTP {e.code}"
    return f"no network? {reason}"


def download(url: str, path: Path, sha256: str | None = None, sha256_prefix: str | None = None,
             report=None, bar: bool = True) -> Path:
    """Stream `url` to `path`; check the SHA-256 (whole digest, or its first hex digits)."""
    from tqdm import tqdm
    path = Path(path)
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DownloadError(f"could not download {url} ({e})", _cause(e, url)) from e
    total = int(response.headers.get("Content-Length") or 0) or None
    h = hashlib.sha256()

    def write(tmp):
        done = 0
        with response, open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=path.name,
                                                  disable=not bar) as progress_bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
                h.update(block)
                done += len(block)
                progress_bar.update(len(block))
                if report is not None:
                    report(done, total)
        digest = h.hexdigest()
        if (sha256 is not None and digest != sha256) or (sha256_prefix is not None and not digest.startswith(sha256_prefix)):
            raise DownloadError(f"{path.name} from {url} has SHA-256 {digest}, expected "
                                f"{sha256 or sha256_prefix + '...'}: the download is damaged or the file changed upstream",
                                "the downloaded file is damaged")

    try:
        atomic_write_bytes(path, write)
    except DownloadError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:   # IncompleteRead is an HTTPException
        raise DownloadError(f"the download of {url} broke off ({e})", _cause(e, url)) from e
    return path
