"""Faults: a checkpoint writer killed mid-save, pickled code in weights, and what a visitor can reach.

(a) A subprocess saves versions of a small model in a loop and is SIGKILLed at random
    moments, mostly inside `save_checkpoint`. After every kill the checkpoint on disk loads,
    its weights equal one saved version (never older than the last save that returned), its
    sidecar parses, and no temporary file is listed as a checkpoint.
(b) A .pth whose pickle would create a file is refused and the file is not created, in the
    library (new-style zip .pth) and through a server started with `--weights evil.pth`.
(c) Exposure: the server binds 127.0.0.1 only, share is off, nothing outside the upload
    folder can be read through the API, and an unexpected error reaches the visitor as a
    sentence without a traceback or server paths.
"""
from __future__ import annotations

import inspect
import json
import os
import pickle
import random
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from alexnet import weights as W
from alexnet.model import build
from app_server import start_server, stop_server
from conftest import ROOT

CLASSES = ["a", "b", "c"]


# ---------------------------------------------------------------- (a) SIGKILL during checkpoint saves

def _version_state(model, v):
    """The weights of saved version v: every tensor drawn from a generator seeded with v."""
    g = torch.Generator().manual_seed(v)
    return {k: torch.randn(t.shape, generator=g) for k, t in model.state_dict().items()}


WRITER = r"""
import sys, torch
from alexnet.model import build
from alexnet import weights as W
CLASSES = ["a", "b", "c"]
""" + inspect.getsource(_version_state) + r"""
model = build("paper", 3, width=0.125)
path, first = sys.argv[2], int(sys.argv[3])
print("READY", flush=True)
for v in range(first, first + 5000):                      # bounded: the parent kills it long before
    model.load_state_dict(_version_state(model, v))
    print("B", v, flush=True)
    W.save_checkpoint(path, model, W.make_meta(model, CLASSES, version=v))
    print("E", v, flush=True)
"""


def _read_line(proc, deadline: float) -> str:
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"the writer exited early: {proc.stderr.read()[-2000:]}")
            return line.strip()
    raise AssertionError("the writer stopped talking")


def test_sigkill_mid_save_never_loses_or_tears_a_checkpoint(tmp_path):
    rng = random.Random(7)
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    path = ckpt_dir / "run.safetensors"
    probe = build("paper", 3, width=0.125)
    saved: set[int] = set()          # every version whose save was begun (the only ones allowed on disk)
    mid_save_kills, orphans = 0, 0
    rounds = 6
    for r in range(rounds):
        first = r * 10_000
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(path), str(first)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        began, done, durations = [], [], []
        try:
            deadline = time.time() + 120
            assert _read_line(proc, deadline) == "READY"
            if r == 0:
                time.sleep(rng.uniform(0.0, 0.05))     # round 0: possibly before the very first save completes
            else:
                target = rng.randint(1, 4)             # let a few saves complete, then aim inside the next one
                t_begin = time.perf_counter()
                while True:
                    kind, v = _read_line(proc, deadline).split()
                    now = time.perf_counter()
                    if kind == "B":
                        began.append(int(v))
                        t_begin = now
                        if len(done) >= target:
                            mean = sum(durations) / len(durations)
                            time.sleep(rng.uniform(0.0, 1.2 * mean))
                            break
                    else:
                        done.append(int(v))
                        durations.append(now - t_begin)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for line in proc.stdout.read().split("\n"):   # what it managed to say before dying
            if line.startswith(("B ", "E ")):
                (began if line[0] == "B" else done).append(int(line.split()[1]))
        saved.update(began)
        if began and (not done or max(began) > max(done)):
            mid_save_kills += 1

        # what is on disk now
        listed = W.list_checkpoints(ckpt_dir)
        tmp = [p for p in ckpt_dir.iterdir() if p.name.endswith(".tmp")]
        orphans = len(tmp)
        if not path.exists():
            assert r == 0 and not done, f"round {r}: the checkpoint vanished"
            assert listed == [], listed
            with pytest.raises(W.WeightsError):
                W.load_checkpoint(path)
            continue
        assert listed == [path], f"round {r}: listed {listed}; temporary files must never be listed"
        model, meta = W.load_checkpoint(path)
        v = meta["version"]
        assert v in saved, f"round {r}: version {v} was never saved"
        if done:
            assert v >= max(done), f"round {r}: save {max(done)} had returned but the file holds {v}: lost"
        expected = _version_state(probe, v)
        for k, t in model.state_dict().items():
            assert torch.equal(t, expected[k]), f"round {r}: {k} differs from saved version {v} (torn write)"
        sidecar = path.with_suffix(".json")
        if not sidecar.exists():   # killed between the first save's weights and its sidecar: the header has the meta
            assert not done and not any(d < v for d in saved if d != v), f"round {r}: a returned save lost its sidecar"
            continue
        side = json.loads(sidecar.read_text())                     # a sidecar is never half-written either
        assert side["version"] in saved and side["version"] <= v, (side["version"], v)
    assert mid_save_kills >= 2, f"only {mid_save_kills} of {rounds} kills landed inside a save"
    print(f"{rounds} kills, {mid_save_kills} mid-save, {orphans} orphaned .tmp file(s) left in the folder")


def test_truncated_checkpoint_is_refused_not_loaded(tmp_path):
    """A checkpoint cut short (a copy interrupted, a disk full) is refused at any length."""
    m = build("paper", 3, width=0.125)
    good = W.save_checkpoint(tmp_path / "good", m, W.make_meta(m, CLASSES)).read_bytes()
    for i, n in enumerate([0, 4, 8, 100, len(good) // 100, len(good) // 2, len(good) - 1]):
        bad = tmp_path / f"cut{i}.safetensors"
        bad.write_bytes(good[:n])
        with pytest.raises(W.WeightsError, match="not a readable safetensors"):
            W.load_checkpoint(bad)


def test_dotted_checkpoint_names_are_kept_apart(tmp_path):
    """Two runs whose names differ after a dot must not overwrite each other (train.py names runs
    after the data folder, and folder names such as 'flowers.v2' are common)."""
    a, b = build("paper", 3, width=0.125), build("paper", 3, width=0.125)
    pa = W.save_checkpoint(tmp_path / "flowers-acc0.93", a, W.make_meta(a, CLASSES, version=1))
    pb = W.save_checkpoint(tmp_path / "flowers-acc0.88", b, W.make_meta(b, CLASSES, version=2))
    assert pa.name == "flowers-acc0.93.safetensors" and pb.name == "flowers-acc0.88.safetensors"
    assert W.load_checkpoint(pa)[1]["version"] == 1


# ---------------------------------------------------------------- (b) pickled code in weights

class _Touch:
    """Unpickling this would create `target` (harmless, but proof that code ran)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def _evil_pth(path: Path, target: Path, zip_format: bool) -> Path:
    payload = {"features.0.weight": _Touch(target), "features.0.bias": torch.zeros(3)}
    if zip_format:
        torch.save(payload, path)                         # torch >= 1.6: a zip with data.pkl inside
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    return path


def test_zip_format_pth_with_code_is_refused_not_run(tmp_path):
    """tests/test_weights.py covers a raw pickle; torch.save's zip container is the other real-world form."""
    target = tmp_path / "pwned"
    evil = _evil_pth(tmp_path / "evil.pth", target, zip_format=True)
    with pytest.raises(W.WeightsError, match="refused evil.pth") as e:
        W.load(evil)
    assert "\n" not in str(e.value) and not target.exists()


# ---------------------------------------------------------------- a second real server: evil weights, a broken checkpoint

@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    """The app with a checkpoint with broken metadata in its list, started without --host."""
    from safetensors.torch import save_file
    work = tmp_path_factory.mktemp("faults-server")
    evil = _evil_pth(work / "evil.pth", work / "pwned", zip_format=False)
    ckpts = work / "cache" / "checkpoints"
    ckpts.mkdir(parents=True)
    m = build("paper", 3, width=0.125)
    broken = ckpts / "broken.safetensors"      # valid JSON metadata without a "spec": an unexpected KeyError inside
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(broken),
              metadata={"alexnet_explainer": json.dumps({"format": W.FORMAT})})
    url, proc, log = start_server(work, None, timeout=120)
    yield dict(url=url, proc=proc, log=log, evil=evil, broken_key="checkpoint:broken.safetensors", work=work)
    stop_server(proc)


@pytest.fixture(scope="module")
def client(hostile_server):
    from gradio_client import Client
    return Client(hostile_server["url"], verbose=False)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    import numpy as np
    from PIL import Image
    p = tmp_path_factory.mktemp("photo") / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(p)
    return p


def _assert_no_internals(msg: str) -> None:
    for leak in ("Traceback", 'File "', str(ROOT), "site-packages", ".py\"", "line "):
        assert leak not in msg, f"the visitor sees {leak!r}: {msg!r}"


def test_evil_weights_flag_exits_with_one_line(tmp_path):
    """`--weights evil.pth` is refused at start-up in one line, and the pickle never runs."""
    target = tmp_path / "pwned"
    evil = _evil_pth(tmp_path / "evil.pth", target, zip_format=False)
    env = dict(os.environ, ALEXNET_CACHE=str(tmp_path / "cache"), GRADIO_ANALYTICS_ENABLED="False")
    r = subprocess.run([sys.executable, str(ROOT / "app" / "main.py"), "--weights", str(evil), "--port", "1"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "refused evil.pth" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not target.exists(), "the pickle ran: it created its file"
    r = subprocess.run([sys.executable, str(ROOT / "app" / "main.py"), "--weights", str(tmp_path / "nope.safetensors")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode != 0 and "no such file" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_model_keys_name_no_server_paths(client, hostile_server):
    """The dropdown offers checkpoint names, never paths, and a visitor cannot steer the server to a file."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    import httpx
    cfg = httpx.get(hostile_server["url"] + "config", timeout=10).text
    assert "checkpoint:broken.safetensors" in cfg and str(hostile_server["work"] / "cache") not in cfg
    photo = Path(__file__).resolve()
    with pytest.raises(AppError):
        client.predict(handle_file(str(photo)), str(hostile_server["evil"]), api_name="/classify")


def test_unexpected_error_shows_a_sentence_not_a_traceback(hostile_server, client, photo):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(photo)), hostile_server["broken_key"], api_name="/classify")
    msg = str(e.value)
    assert "Something went wrong on the server" in msg, msg
    _assert_no_internals(msg)
    assert "KeyError" not in msg and "spec" not in msg
    log = hostile_server["log"].read_text()
    assert "unexpected error in classify" in log and "KeyError" in log   # the operator still gets the traceback


def test_api_cannot_read_files_outside_the_uploads(hostile_server, client):
    """A raw API call naming a server path (not uploaded) is refused before the app sees it; the file
    route refuses the app's own code, the server log and the weights."""
    import httpx
    url = hostile_server["url"]
    secrets = ["/etc/passwd", str(ROOT / "app" / "main.py"), str(hostile_server["log"]), str(hostile_server["evil"])]
    for p in secrets:
        r = httpx.post(url + "gradio_api/call/classify",
                       json={"data": [{"path": p, "meta": {"_type": "gradio.FileData"}}, "untrained"]}, timeout=30)
        assert r.status_code == 200, r.text
        with httpx.stream("GET", url + f"gradio_api/call/classify/{r.json()['event_id']}", timeout=60) as s:
            body = "".join(s.iter_text())
        assert "event: error" in body and "root:" not in body and "import" not in body, body[:500]
        assert p not in body and Path(p).name not in body, f"the answer names {p}: {body[:500]}"
        r = httpx.get(url + "gradio_api/file=" + p, timeout=10)
        assert r.status_code in (403, 404) and "root:" not in r.text and "import " not in r.text, (p, r.status_code)
    cfg = httpx.get(url + "config", timeout=10).text
    assert str(ROOT) not in cfg, "the page config reveals where the server's code lives"
    assert hostile_server["proc"].poll() is None


def test_oversized_upload_is_refused_by_the_server_itself(hostile_server, client, tmp_path):
    """gradio_client refuses a file over the limit before sending it; a raw POST must get 413 from the server."""
    import httpx
    from alexnet.images import MAX_BYTES
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * (MAX_BYTES + 1))
    with open(big, "rb") as f:
        r = httpx.post(hostile_server["url"] + "gradio_api/upload", files={"files": ("big.png", f, "image/png")},
                       timeout=120)
    assert r.status_code == 413, (r.status_code, r.text[:200])
    assert hostile_server["proc"].poll() is None


# ---------------------------------------------------------------- (c) exposure

def _listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that process `pid` owns, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:          # 0A = LISTEN
                continue
            hexaddr, hexport = f[1].split(":")
            raw = bytes.fromhex(hexaddr)
            if width == 8:
                addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:                                          # four little-endian 32-bit words
                addr = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            out.append((addr, int(hexport, 16)))
    return out


def test_defaults_are_local_and_private():
    from app.main import address, get_parser
    args = get_parser().parse_args([])
    assert address(args, {}) == ("127.0.0.1", 7860) and args.share is False   # no flag, no GRADIO_SERVER_NAME
    help_text = " ".join(get_parser().format_help().split())      # what `python app/main.py --help` prints
    assert "else 127.0.0.1" in help_text and "--share" in help_text and "off by default" in help_text


def test_server_listens_on_loopback_only(hostile_server, client):
    """Started without --host: every listening socket of the process is 127.0.0.1, and no share link."""
    url, proc = hostile_server["url"], hostile_server["proc"]
    assert url.startswith("http://127.0.0.1:")
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    socks = _listening(proc.pid)
    assert (("127.0.0.1", port) in socks), socks
    assert all(addr == "127.0.0.1" for addr, _ in socks), f"listening beyond loopback: {socks}"
    log = hostile_server["log"].read_text()
    assert "gradio.live" not in log and "public URL" not in log
    # not reachable through another local interface address, when the machine has one
    try:
        other = socket.gethostbyname(socket.gethostname())
    except OSError:
        other = "127.0.0.1"
    if not other.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((other, port), timeout=2).close()


def test_busy_port_is_one_line_not_a_traceback(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = dict(os.environ, ALEXNET_CACHE=str(tmp_path / "cache"), GRADIO_ANALYTICS_ENABLED="False")
        r = subprocess.run([sys.executable, str(ROOT / "app" / "main.py"), "--port", str(port), "--device", "cpu"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert str(port) in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr


def test_only_the_projects_own_errors_reach_the_visitor_as_sentences(caplog):
    """An internal ValueError (numpy, sklearn, UMAP) is a server error: logged with its traceback,
    shown as the server-error sentence. A UserError subclass is the visitor's: its sentence, not logged."""
    import gradio as gr
    import numpy as np
    from alexnet.errors import OptionError
    from app.ui import friendly

    @friendly
    def internal():
        np.zeros(3).reshape(2, 2)                 # ValueError: cannot reshape array of size 3 into shape (2,2)

    @friendly
    def visitor():
        raise OptionError("unknown attribution method 'magic'; choose one of saliency, gradcam")

    @friendly
    def streaming():
        yield 1
        raise ValueError("internal generator failure")

    with caplog.at_level("ERROR", logger="alexnet-explainer"):
        with pytest.raises(gr.Error) as e:
            internal()
        assert "Something went wrong on the server" in str(e.value) and "reshape" not in str(e.value)
        assert "unexpected error in internal" in caplog.text and "reshape" in caplog.text
        caplog.clear()
        with pytest.raises(gr.Error, match="unknown attribution method 'magic'"):
            visitor()
        assert caplog.text == ""
        with pytest.raises(gr.Error, match="Something went wrong on the server"):
            list(streaming())
        assert "internal generator failure" in caplog.text
