"""What a new user waits for on a fresh install: no ../shared, no --data, no network, an empty cache.

    python benchmarks/first_use.py [--runs 3] [--out benchmarks/results/first_use.json]

Each run starts the real app (tests/app_server.start_server with NEWCOMER_ENV, a throw-away cache
and Gradio folder, so nothing from an earlier run helps) and drives headless Chromium as a person:

1. **server**: seconds from launching `python app/main.py` until the page answers.
2. **Embeddings first view**: from the click on the Embeddings tab until the map of the 500 pack
   photos is on screen (the map shipped with the model; no click on "Build").
3. **placement + neighbours**: with the held-out rose uploaded, from the click on "Build the map (or
   place my photo on it)" until its credited neighbours are on screen (fc7 of the upload, its place
   on the map, the gallery, the page round trip).
4. **offline fine-tune**: the Retrain tab's default Start until "Done" names its checkpoint (the pack's
   decode, the frozen trunk's feature pass and the head's training, end to end). Run 1 only: later
   runs would measure the same thing again. Right after Start, a held-out daisy is uploaded in the
   Classify tab: its Grad-CAM's wait during the training, against the rose's before it (idle).

Then, in this process, the library calls behind 3 (upload decode, fc7, place, neighbours) timed alone
on the shipped model and map, median of 20. Prints and writes one JSON object with the load average.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    """A module of tests/ loaded from its file (no sys.path edit)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def example(label: str) -> Path:
    """The held-out photo of `label` shipped among the app's examples."""
    from app.examples import flower_examples
    return Path(next(e.path for e in flower_examples() if e.label == label))


def browser_run(finetune: bool) -> dict:
    from playwright.sync_api import expect, sync_playwright
    srv = _load("app_server")
    chromium = __import__("shutil").which("chromium") or __import__("shutil").which("chromium-browser")
    out = {}
    with tempfile.TemporaryDirectory(prefix="alexnet-first-use-") as tmp:
        t0 = time.perf_counter()
        url, proc, log = srv.start_server(Path(tmp), newcomer=True, timeout=180)
        out["server_start_s"] = time.perf_counter() - t0
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, headless=True,
                                            args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(600_000)
                expect.set_options(timeout=600_000)
                page.goto(url, wait_until="domcontentloaded")
                page.locator("#upload").wait_for(state="visible")

                def tab(name):
                    page.get_by_role("tab", name=name, exact=True).click()

                t0 = time.perf_counter()
                tab("Embeddings")
                expect(page.locator("#embed-status")).to_contain_text("Map of 500 images")
                expect(page.locator("#umap img")).to_be_visible()
                out["embeddings_first_view_s"] = time.perf_counter() - t0

                tab("Classify & Explain")
                t0 = time.perf_counter()
                page.locator("#upload input[type=file]").set_input_files(str(example("roses")))
                expect(page.locator("#top5")).to_contain_text("%")
                expect(page.locator("#gradcam img")).to_be_visible()
                out["gradcam_idle_s"] = time.perf_counter() - t0
                tab("Embeddings")
                t0 = time.perf_counter()
                page.get_by_role("button", name=re.compile("Build the map")).click()
                expect(page.locator("#neighbours")).to_contain_text(", by ")
                out["place_and_neighbours_page_s"] = time.perf_counter() - t0

                if finetune:
                    tab("Retrain")
                    t0 = time.perf_counter()
                    page.get_by_role("button", name="Start training").click()
                    status = page.locator("#train-status")
                    expect(status).to_contain_text("Training:")
                    tab("Classify & Explain")
                    before = page.locator("#gradcam img").get_attribute("src")
                    t1 = time.perf_counter()
                    page.locator("#upload input[type=file]").set_input_files(str(example("daisy")))
                    expect(page.locator("#gradcam img")).not_to_have_attribute("src", before)
                    out["gradcam_during_training_s"] = time.perf_counter() - t1
                    out["training_still_running_then"] = "Training:" in status.inner_text()
                    tab("Retrain")
                    expect(status).to_contain_text("Done")
                    expect(status).to_contain_text(".safetensors")
                    out["offline_finetune_s"] = time.perf_counter() - t0
                    out["offline_finetune_status"] = status.inner_text()[:400]
                browser.close()
        finally:
            srv.stop_server(proc)
        out["tracebacks_in_server_log"] = log.read_text().count("Traceback") if log.exists() else None
    return out


def library_placement(repeats: int = 20) -> dict:
    """decode + fc7 + place + neighbours for the rose, on the shipped model and map (what the page calls)."""
    from alexnet import weights as W
    from alexnet.compact import SHIPPED
    from alexnet.images import open_image, to_uint8
    from viz import embedding as E
    from viz.fc7_map import SHIPPED_MAP, load_map, map_neighbours, place
    t0 = time.perf_counter()
    m = load_map(SHIPPED_MAP)
    load_s = time.perf_counter() - t0
    model, meta = W.load(SHIPPED)
    model.eval()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        x = to_uint8(open_image(example("roses")))                                        # (3, 256, 256) uint8
        f = E.fc7_features(model, x[None], meta["mean"], meta["std"], meta["input_size"], cache=False)[0]
        place(m, f)
        map_neighbours(m, f, k=6)
        times.append(time.perf_counter() - t0)
    return dict(shipped_map_load_s=load_s, place_and_neighbours_median_s=statistics.median(times),
                place_and_neighbours_max_s=max(times), repeats=repeats)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="fresh servers, each with an empty cache (default 3)")
    ap.add_argument("--no-finetune", action="store_true", help="skip the Retrain run")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "first_use.json"))
    args = ap.parse_args(argv)
    load_before = [round(v, 2) for v in os.getloadavg()]
    runs = [browser_run(finetune=(i == 0 and not args.no_finetune)) for i in range(args.runs)]
    lib = library_placement()

    def med(key):
        vals = [r[key] for r in runs if key in r]
        return round(statistics.median(vals), 3) if vals else None

    result = dict(
        benchmark="first_use", what="a fresh install: no ../shared, no --data, no network, empty cache",
        machine=f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}, "
                f"{'CUDA' if torch.cuda.is_available() else 'no GPU'}",
        python=platform.python_version(), load_average_before=load_before,
        load_average_after=[round(v, 2) for v in os.getloadavg()],
        server_start_s=med("server_start_s"), embeddings_first_view_s=med("embeddings_first_view_s"),
        place_and_neighbours_page_s=med("place_and_neighbours_page_s"),
        offline_finetune_s=med("offline_finetune_s"), gradcam_idle_s=med("gradcam_idle_s"),
        gradcam_during_training_s=med("gradcam_during_training_s"), library=lib, runs=runs,
        targets=dict(embeddings_first_view_s=2.0, place_and_neighbours_s=0.5, offline_finetune_s=120.0))
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
