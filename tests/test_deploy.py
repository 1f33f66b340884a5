"""Deployment conventions: Gradio's own environment variables place the server; --help answers at once."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from app.main import address, get_parser
from app_server import ROOT, UNREACHABLE, free_port, signal_state, stop_server


def test_flags_beat_gradios_variables_which_beat_the_default():
    args = get_parser().parse_args([])
    assert address(args, {}) == ("127.0.0.1", 7860)                                    # loopback by default
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8080"}
    assert address(args, env) == ("0.0.0.0", 8080)
    assert address(get_parser().parse_args(["--host", "127.0.0.3", "--port", "9000"]), env) == ("127.0.0.3", 9000)
    with pytest.raises(ValueError, match="GRADIO_SERVER_PORT='http' is not a port number"):
        address(argparse.Namespace(host=None, port=None), {"GRADIO_SERVER_PORT": "http"})


def test_help_answers_before_gradio_and_torch_are_imported():
    code = ("import runpy, sys; sys.argv = ['app/main.py', '--help']\n"
            "try:\n    runpy.run_path('app/main.py', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('gradio', 'torch') if m in sys.modules))")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    took = time.perf_counter() - t0
    assert "GRADIO_SERVER_NAME" in out and "--weights" in out
    assert "HEAVY []" in out, out[-200:]
    assert took < 2.0, f"--help took {took:.1f} s"


def omp_spin_count(env: dict) -> str:
    """GOMP_SPINCOUNT as the server's torch sees it: app.main imported, then torch (libgomp prints its settings
    when it starts, with OMP_DISPLAY_ENV=VERBOSE)."""
    code = "import sys, app.main; assert 'torch' not in sys.modules; import torch; torch.ones(2, 2).sum()"
    err = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=dict(env, OMP_DISPLAY_ENV="VERBOSE")).stderr
    found = [line.split("=")[1].strip().strip("'") for line in err.splitlines() if "GOMP_SPINCOUNT" in line]
    if not found:
        pytest.skip("this torch does not use GNU OpenMP (libgomp)")
    return found[0]


def test_the_servers_torch_threads_sleep_instead_of_spinning():
    """app.main sets OpenMP's passive wait before torch loads (a helper spinning for 300,000 turns takes a core
    the event loop needs); a policy given by whoever starts the server wins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    assert omp_spin_count(env) == "0"
    assert int(omp_spin_count(dict(env, OMP_WAIT_POLICY="ACTIVE"))) > 300_000


def test_the_servers_malloc_reuses_a_batchs_buffers():
    """app.main.bound_malloc: a 9 MB buffer (conv1's maps for 8 photos) freed and allocated again comes back
    from malloc's arena, not as fresh pages the kernel must fault in one by one (2,269 of them)."""
    code = ("import resource, torch\nfrom app.main import bound_malloc\nbound_malloc()\n"
            "def faults():\n    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "each = []\nfor _ in range(33):\n    before = faults()\n    torch.ones(8, 96, 55, 55).sum()\n"
            "    each.append(faults() - before)\nprint('FAULTS', *each[3:])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    each = sorted(int(v) for v in out.split("FAULTS")[1].split())
    # the median buffer: now and then one comes from a fresh mapping (once in ~50 here), not every time
    assert each[len(each) // 2] < 50, f"page faults per 9 MB buffer: {each}"


def test_gradio_server_name_is_where_it_serves(tmp_path):
    port = free_port()
    env = dict(os.environ, ALEXNET_CACHE=str(tmp_path / "cache"), GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(tmp_path / "gradio"), ALEXNET_IMAGENET_URL=UNREACHABLE,
               GRADIO_SERVER_NAME="127.0.0.2", GRADIO_SERVER_PORT=str(port))
    log = tmp_path / "server.log"
    proc = subprocess.Popen([sys.executable, str(ROOT / "app" / "main.py"), "--device", "cpu"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline, ok = time.time() + 90, False
        while time.time() < deadline and not ok:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.2:{port}/", timeout=2) as r:
                    ok = r.status == 200
            except OSError:
                time.sleep(0.5)
        assert ok, f"nothing answered on 127.0.0.2:{port}:\n{log.read_text()[-2000:]}"
        with pytest.raises(OSError):                        # and nothing on the loopback address it did not name
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        stop_server(proc)


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_with_slow_work_queued_stops_the_server_cleanly(tmp_path, sample_jpeg, signum):
    """Ctrl+C (or a container's SIGTERM) while Integrated Gradients requests run and wait: the lanes drop
    the queued passes and stop the running one, the server closes, and the process exits 0 without a
    traceback."""
    import signal
    gradio_client = pytest.importorskip("gradio_client")
    from app_server import start_server
    url, proc, log = start_server(tmp_path)
    try:
        client = gradio_client.Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        jobs = [client.submit(gradio_client.handle_file(str(sample_jpeg)), "integrated_gradients", api_name="/explain")
                for _ in range(4)]
        time.sleep(1.0)
        assert not jobs[-1].done()
        masks = signal_state(proc.pid)
        proc.send_signal(getattr(signal, signum))
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, f"{signum} -> {code}; before it: {masks}\n" + log.read_text()[-3000:]
    finally:
        stop_server(proc)
    text = log.read_text()
    assert "Stopping: closing server" in text and "Traceback" not in text, text[-2000:]
