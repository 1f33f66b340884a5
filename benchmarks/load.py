"""How does the app hold up under many visitors? Prints one JSON line.

    python benchmarks/load.py [--users 20] [--seconds 60] [--methods saliency,gradcam]
                              [--url http://127.0.0.1:PORT/] [--image PATH] [--concurrency 2]
                              [--client http|gradio_client]

N simulated visitors call the `/explain` endpoint back to back with a random method from
--methods ("classify" calls `/classify` instead), for --seconds. Each request does what a
browser or an API client does: upload the photo, call the endpoint, wait for the answer, and
fetch the files it returns (the overlay, the .npy).

Two clients (--client):
- http (default): all visitors as asyncio tasks in one thread over Gradio's HTTP API
  (/gradio_api/upload, /gradio_api/call/<api>, its event stream, then each returned file).
  About 10 ms of CPU per request, so on a small machine the numbers are the server's.
- gradio_client: one gradio_client.Client per visitor, each in its own thread. Heavier: on 2
  cores its 50 visitors took more than one core (about 270 ms of CPU per request), so the
  server being measured got less than one.

Without --url the script starts the app itself on a free 127.0.0.1 port
(tests/app_server.start_server: the shipped flowers model, its own empty cache) and stops it
at the end. Only loopback addresses are accepted: this is a load test for your own machine,
never for someone else's server.

--long-jobs adds what a server also runs: one visitor synthesising conv5 units in a loop
(/feature_visualisation) and the Retrain tab's default fine-tune one after another (/train),
their latencies reported apart (`long_jobs`). A slow map the server refuses at once with a sentence
(app.lanes.Busy: too many waiting) counts as `refused`, not as an error.

Reported: completed requests, errors (by kind), throughput (successful requests per
second over the measured window), latency p50 / p95 / max in ms (overall and per method),
the server's resident memory (VmRSS polled every 0.2 s and VmHWM, the kernel's high-water
mark, at the end), and the CPU seconds the server and the load generator each used over the
window. One warm-up request per method (model loads) runs before the clock starts.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_USERS = 64            # the app's queue holds 64 events; more users would only measure refusals


def app_server():
    """tests/app_server.py (start the real app on a free port), loaded from its file: no sys.path edit."""
    spec = importlib.util.spec_from_file_location("app_server", ROOT / "tests" / "app_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(ms: list[float]) -> dict:
    r = lambda v: None if v is None else round(v, 1)   # noqa: E731
    return dict(n=len(ms), p50=r(percentile(ms, 50)), p95=r(percentile(ms, 95)), max=r(max(ms) if ms else None))


def proc_status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time a process has used so far (/proc/PID/stat fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return None


def pid_listening_on(port: int) -> int | None:
    """Best effort: the pid whose socket listens on `port` (readable only for our own processes)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{f[9]}]")
    if not inodes:
        return None
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            for fd in (d / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(d.name)
        except OSError:
            continue
    return None


class RssPoller(threading.Thread):
    def __init__(self, pid: int | None, every: float = 0.2):
        super().__init__(daemon=True, name="rss-poller")
        self.pid, self.every, self.peak_kb = pid, every, 0
        self.stop = threading.Event()

    def run(self):
        while self.pid and not self.stop.is_set():
            kb = proc_status_kb(self.pid, "VmRSS")
            if kb is None:
                return
            self.peak_kb = max(self.peak_kb, kb)
            self.stop.wait(self.every)


def make_image(workdir: Path) -> Path:
    """A real flower photo when ../shared has them, else a smooth synthetic 320x240 JPEG."""
    shared = Path(os.environ.get("ALEXNET_SHARED", ROOT.parent / "shared")) / "data" / "flower_photos_256"
    found = sorted(shared.glob("*/*.jpg"))[:1] if shared.is_dir() else []
    if found:
        return found[0]
    import numpy as np
    from PIL import Image
    small = Image.fromarray(np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8))
    p = workdir / "load-test.jpg"
    small.resize((320, 240), Image.BICUBIC).save(p, quality=90)
    return p


def user(i: int, url: str, image: str, methods: list[str], start: float, end: float, results: list,
         lock: threading.Lock, request_timeout: float) -> None:
    from gradio_client import Client, handle_file
    rng = random.Random(i)
    try:
        client = Client(url, verbose=False)
    except Exception as e:  # noqa: BLE001 - a visitor who cannot connect is an error to count, not a crash
        with lock:
            results.append(("connect", None, False, f"{type(e).__name__}"))
        return
    while time.time() < start:            # everybody starts together
        time.sleep(0.01)
    n = 0
    while time.time() < end and n < 100_000:
        n += 1
        method = rng.choice(methods)
        t0 = time.perf_counter()
        ok, kind = True, ""
        try:
            if method == "classify":
                job = client.submit(handle_file(image), api_name="/classify")
            else:
                job = client.submit(handle_file(image), method, api_name="/explain")
            job.result(timeout=request_timeout)
        except Exception as e:  # noqa: BLE001
            ok, kind = False, f"{type(e).__name__}: {str(e)[:80]}"
        ms = (time.perf_counter() - t0) * 1e3
        with lock:
            results.append((method, ms, ok, kind))


async def call(client, url: str, api: str, data: list) -> list:
    """One call of a named endpoint over Gradio's HTTP API, its event stream read to the end; raises on failure
    (a refusal with a sentence, app.lanes.Busy, raises Refused)."""
    r = await client.post(f"{url}gradio_api/call/{api}", json={"data": data})
    r.raise_for_status()
    event, payload = None, None
    async with client.stream("GET", f"{url}gradio_api/call/{api}/{r.json()['event_id']}") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = json.loads(line[5:])
                break
    if event == "error" and "server is busy" in str(payload):
        raise Refused(str(payload)[:60])
    if event != "complete":
        raise RuntimeError(f"the server answered {event}: {str(payload)[:60]}")
    return payload


class Refused(RuntimeError):
    """The server said at once, in a sentence, that it is too busy for a slow map (counted apart from errors)."""


async def http_request(client, url: str, image: tuple[str, bytes], method: str, defaults: dict) -> None:
    """One visitor's request over Gradio's HTTP API; raises on any failure."""
    r = await client.post(url + "gradio_api/upload", files={"files": (image[0], image[1], "image/jpeg")})
    r.raise_for_status()
    api = "classify" if method == "classify" else "explain"
    data = list(defaults[api])                           # every input's default, then the photo and method
    data[0] = {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}}
    if api == "explain":
        data[1] = method
    for out in await call(client, url, api, data):       # what the page would show or download
        if isinstance(out, dict) and out.get("url"):
            (await client.get(out["url"])).raise_for_status()


async def long_jobs(client, url: str, defaults: dict, start: float, end: float, results: list) -> None:
    """The long jobs beside the visitors: one visitor synthesising conv5 units in a loop (/feature_visualisation)
    and one default fine-tune after another (/train: a new fc8 on the shipped model's fc7, with its before/after
    views), until the window ends."""
    import asyncio

    async def loop(name: str, data_for) -> None:
        await asyncio.sleep(max(0.0, start - time.time()))
        i = 0
        while time.time() < end:
            t0 = time.perf_counter()
            ok, kind = True, ""
            try:
                await call(client, url, name, data_for(i))
            except Exception as e:  # noqa: BLE001 - counted like any request
                ok, kind = False, f"{type(e).__name__}: {str(e)[:80]}"
            results.append((name, (time.perf_counter() - t0) * 1e3, ok, kind))
            i += 1

    def vis(i: int) -> list:
        data = list(defaults["feature_visualisation"])
        data[-1] = i % 256                                   # a different conv5 unit each time (none cached)
        return data

    def finetune(i: int) -> list:
        return list(defaults["train"])                       # the Retrain tab's default Start

    await asyncio.gather(loop("feature_visualisation", vis), loop("train", finetune))


async def http_users(n: int, url: str, image_path: str, methods: list[str], start: float, end: float,
                     results: list, request_timeout: float, long: bool = False) -> None:
    import asyncio
    import httpx
    image = (Path(image_path).name, Path(image_path).read_bytes())
    # Idle connections are dropped after 2 s, before uvicorn's 5 s keep-alive closes them from its side (a
    # request sent on a connection the server is closing fails as "Server disconnected", a client artefact).
    limits = httpx.Limits(max_connections=2 * n + 4, max_keepalive_connections=2 * n + 4, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=request_timeout, limits=limits) as client:
        info = (await client.get(url + "gradio_api/info")).json()["named_endpoints"]
        apis = ("classify", "explain") + (("feature_visualisation", "train") if long else ())
        defaults = {api: [p.get("parameter_default") for p in info[f"/{api}"]["parameters"]] for api in apis}

        async def visitor(i: int) -> None:
            rng = random.Random(i)
            await asyncio.sleep(max(0.0, start - time.time()))
            while time.time() < end:
                method = rng.choice(methods)
                t0 = time.perf_counter()
                ok, kind = True, ""
                try:
                    await asyncio.wait_for(http_request(client, url, image, method, defaults), request_timeout)
                except Exception as e:  # noqa: BLE001 - a failed request is an error to count, not a crash
                    ok, kind = False, f"{type(e).__name__}: {str(e)[:80]}"
                results.append((method, (time.perf_counter() - t0) * 1e3, ok, kind))

        jobs = [long_jobs(client, url, defaults, start, end, results)] if long else []
        await asyncio.gather(*(visitor(i) for i in range(n)), *jobs)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=20, help=f"concurrent visitors (default 20, at most {MAX_USERS})")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to keep the load on (default 60)")
    ap.add_argument("--methods", default="saliency,gradcam", help="attribution methods to mix (default saliency,gradcam)")
    ap.add_argument("--url", default=None, help="an app already running on this machine (default: start one)")
    ap.add_argument("--image", default=None, help="the photo every visitor sends (default: a flower or a synthetic one)")
    ap.add_argument("--concurrency", type=int, default=None, help="--concurrency for the app this script starts")
    ap.add_argument("--request-timeout", type=float, default=180.0, help="seconds before one request counts as failed")
    ap.add_argument("--long-jobs", action="store_true",
                    help="also run feature visualisation in a loop and default fine-tunes one after another (http client)")
    ap.add_argument("--client", choices=["http", "gradio_client"], default="http",
                    help="http: light asyncio visitors (default); gradio_client: one Client and thread per visitor")
    args = ap.parse_args(argv)
    if not 1 <= args.users <= MAX_USERS:
        ap.error(f"--users must be 1..{MAX_USERS}")
    if not 1 <= args.seconds <= 3600:
        ap.error("--seconds must be 1..3600")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    tmp = tempfile.TemporaryDirectory(prefix="alexnet-load-")
    work = Path(tmp.name)
    proc = None
    try:
        if args.url:
            u = urlparse(args.url)
            if u.hostname not in LOOPBACK:
                ap.error(f"--url must be on this machine ({', '.join(sorted(LOOPBACK))}), not {u.hostname}")
            url = args.url if args.url.endswith("/") else args.url + "/"
            pid = pid_listening_on(u.port or 80)
            server = "given"
        else:
            start_server = app_server().start_server
            extra = ("--concurrency", str(args.concurrency)) if args.concurrency else ()
            t0 = time.perf_counter()
            url, proc, log = start_server(work, None, args=extra, timeout=180)
            pid, server = proc.pid, f"started in {time.perf_counter() - t0:.1f} s"
        image = str(Path(args.image).resolve()) if args.image else str(make_image(work))

        from gradio_client import Client, handle_file
        t0 = time.perf_counter()
        warm = Client(url, verbose=False)
        for method in methods:                       # loads the model (and the slow lane's copy of it)
            if method == "classify":
                warm.predict(handle_file(image), api_name="/classify")
            else:
                warm.predict(handle_file(image), method, api_name="/explain")
        warmup_s = time.perf_counter() - t0
        rss_start = proc_status_kb(pid, "VmRSS") if pid else None

        load_before = [round(v, 2) for v in os.getloadavg()]   # 1, 5, 15 min: what else was running
        cpu_before = cpu_seconds(pid), cpu_seconds(os.getpid())
        poller = RssPoller(pid)
        poller.start()
        results: list = []
        lock = threading.Lock()
        start = time.time() + 1.0 + 0.05 * args.users          # time for every Client to fetch the config
        end = start + args.seconds
        threads = []
        if args.client == "http":
            import asyncio
            asyncio.run(http_users(args.users, url, image, methods, start, end, results, args.request_timeout,
                                   long=args.long_jobs))
        else:
            threads = [threading.Thread(target=user, args=(i, url, image, methods, start, end, results, lock,
                                                           args.request_timeout), daemon=True)
                       for i in range(args.users)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=max(0.0, end - time.time()) + args.request_timeout + 10)
        window = max(time.time(), end) - start
        cpu_after = cpu_seconds(pid), cpu_seconds(os.getpid())
        poller.stop.set()
        poller.join(timeout=2)
        hwm = proc_status_kb(pid, "VmHWM") if pid else None
        alive = proc.poll() is None if proc is not None else None

        tmp_files = None
        if proc is not None:    # what the server left in its Gradio cache (uploads and returned images)
            files = [f for f in (work / "gradio").rglob("*") if f.is_file()]
            tmp_files = dict(files=len(files), mb=round(sum(f.stat().st_size for f in files) / 2**20, 1))
        visits = [r for r in results if r[0] in methods]          # the visitors' requests; long jobs apart
        ok_ms = [ms for _, ms, ok, _ in visits if ok]
        refused = sum(1 for _, _, ok, kind in visits if not ok and kind.startswith("Refused"))
        errors = Counter(kind for _, _, ok, kind in visits if not ok and not kind.startswith("Refused"))
        long_rows = {name: dict(summary([ms for n, ms, ok, _ in results if n == name and ok]),
                                errors=[kind for n, _, ok, kind in results if n == name and not ok][:3])
                     for name in ("feature_visualisation", "train") if args.long_jobs}
        mb = lambda kb: None if not kb else round(kb / 1024, 1)   # noqa: E731
        out = dict(
            benchmark="load", client=args.client, users=args.users, seconds=args.seconds, methods=methods, server=server,
            long_jobs=long_rows or None,
            requests=len(visits), ok=len(ok_ms), refused=refused, errors=sum(errors.values()),
            error_kinds=dict(errors.most_common(5)),
            throughput_rps=round(len(ok_ms) / window, 2) if window > 0 else None, window_s=round(window, 1),
            latency_ms=summary(ok_ms),
            by_method={m: summary([ms for meth, ms, ok, _ in visits if ok and meth == m]) for m in methods},
            warmup_s=round(warmup_s, 1), unfinished_users=sum(t.is_alive() for t in threads),
            server_rss_mb=dict(before=mb(rss_start), peak_polled=mb(poller.peak_kb), vmhwm=mb(hwm)),
            # CPU seconds over the window: how much of the machine the server had, and the load generator took
            cpu_s={who: None if None in (a, b) else round(b - a, 1)
                   for who, a, b in zip(("server", "load_generator"), cpu_before, cpu_after)},
            server_alive=alive, server_gradio_cache=tmp_files, cpus=os.cpu_count(), load_average_before=load_before, python=platform.python_version(),
        )
        print(json.dumps(out), flush=True)
        if errors and proc is not None:     # the server's own account of the first failure, for whoever reads stderr
            text = log.read_text(errors="replace")
            i = text.find("Traceback")
            if i >= 0:
                print(text[i:i + 4000], file=sys.stderr)
        return out
    finally:
        if proc is not None:
            stop_server = app_server().stop_server
            stop_server(proc)
        tmp.cleanup()


if __name__ == "__main__":
    main()
