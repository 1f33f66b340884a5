"""Start the real app (`python app/main.py`) on a free 127.0.0.1 port, for API and browser tests."""
from __future__ import annotations

import os
import socket
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "http://127.0.0.1:9/alexnet-owt-7be5be79.pth"      # port 9 (discard): refused at once
UNREACHABLE_FLOWERS = "http://127.0.0.1:9/flower_photos.tgz"
# What a new user has: no ../shared beside the package, and (in tests) no network for downloads.
NEWCOMER_ENV = dict(ALEXNET_IGNORE_SHARED="1", ALEXNET_FLOWERS_URL=UNREACHABLE_FLOWERS, ALEXNET_IMAGENET_URL=UNREACHABLE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path, data: Path | None = None, args=(), timeout: float = 90.0,
                 command=(sys.executable, str(ROOT / "app" / "main.py")), cwd: Path = ROOT, newcomer: bool = False,
                 env: dict | None = None):
    """Launch the app (`command`, by default `python app/main.py` in this checkout) in a subprocess
    with its own cache; return (url, process, log path). `newcomer`: as a new user's machine, with no
    ../shared (NEWCOMER_ENV); `env` replaces the inherited environment."""
    port = free_port()
    env = dict(os.environ if env is None else env, ALEXNET_CACHE=str(workdir / "cache"),
               TORCH_HOME=str(workdir / "torch"), GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1",
               GRADIO_TEMP_DIR=str(workdir / "gradio"),
               # tests never download: choosing ImageNet or the full flower set must fail clearly
               ALEXNET_IMAGENET_URL=UNREACHABLE, ALEXNET_FLOWERS_URL=UNREACHABLE_FLOWERS)
    if newcomer:
        env.update(NEWCOMER_ENV)
        env.pop("ALEXNET_DATA", None)
    cmd = [*command, "--port", str(port), "--device", "cpu", *args]
    if data is not None:
        cmd += ["--data", str(data)]
    log = workdir / "server.log"
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            preexec_fn=_ctrl_c_reaches_it)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return url, proc, log
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the app did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _ctrl_c_reaches_it() -> None:
    """In the child, before exec: SIGINT back to its default action. A child inherits an ignored SIGINT
    (as after `nohup` or `cmd &` in a script, or from a runner that ignored it), and Python then never
    turns Ctrl+C into KeyboardInterrupt; the app's server must see it as from a user's terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signal_state(pid: int) -> str:
    """The process's ignored, blocked and caught signal masks, for a failure message."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "(no /proc status)"
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(("SigIgn", "SigBlk", "SigCgt")))


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
