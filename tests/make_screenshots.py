"""Screenshots of the app's main tabs for the README: starts the real server, drives headless Chromium.

    python tests/make_screenshots.py --out docs/screenshots
    python tests/make_screenshots.py --out /tmp/shots --weights imagenet --per-class 0

By default the server runs in a throw-away folder (its own cache, so the shipped flowers model
unless --weights is given), and its --data is a small sample of ../shared/data/flower_photos_256
(--per-class photos per class, symlinked) so the Embeddings map builds in seconds on a CPU;
without the flowers it falls back to a synthetic three-class folder. The photo uploaded is the
held-out rose shipped among the app's examples (assets/examples/), or --image.

Writes classify.png, filters.png, layers.png, embeddings.png and about.png (full page, --width px wide).
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

from app_server import start_server, stop_server  # tests/ is sys.path[0] when this file runs as a script

FLOWERS = ROOT.parent / "shared" / "data" / "flower_photos_256"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def sample_folder(src: Path, dst: Path, per_class: int) -> Path:
    """The first `per_class` photos of each class of `src`, linked (or copied) into `dst`."""
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / cls.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.iterdir())[:per_class]:
            try:
                (dst / cls.name / f.name).symlink_to(f.resolve())
            except OSError:
                shutil.copy2(f, dst / cls.name / f.name)
    return dst


def default_data(work: Path, per_class: int) -> Path:
    if FLOWERS.is_dir():
        return FLOWERS if per_class <= 0 else sample_folder(FLOWERS, work / "flowers", per_class)
    from conftest import make_image_folder
    return make_image_folder(work / "synthetic", classes=("daisy", "roses", "tulips"), per_class=12, size=128)


def default_image() -> Path:
    """The held-out rose shipped as an example (the shipped flowers model never trained on it), else any example."""
    from app.examples import flower_examples, other_examples
    found = flower_examples()
    roses = [e for e in found if e.label == "roses"]
    for e in roses + found + other_examples():
        return Path(e.path)
    raise SystemExit("no example image found: pass --image PATH")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise SystemExit("Chromium not found on PATH (chromium or chromium-browser)")
    return path


def shrink(path: Path, width: int = 1000) -> None:
    """Keep README pictures small: 1000 px wide, 256-colour PNG (about 150-300 KB instead of ~800 KB)."""
    from PIL import Image
    img = Image.open(path).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def shoot(url: str, image: Path, out: Path, width: int, timeout_s: float) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright
    ms = int(timeout_s * 1000)
    saved = []

    def save(page, name):
        page.wait_for_timeout(500)    # let images finish painting
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shrink(path)
        saved.append(path)
        print(f"  wrote {path}", flush=True)

    def tab(page, name):
        t = page.get_by_role("tab", name=name, exact=True)
        t.click()
        expect(t).to_have_attribute("aria-selected", "true")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.set_default_timeout(ms)
        expect.set_options(timeout=ms)
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#upload").wait_for(state="visible")

        page.locator("#upload input[type=file]").set_input_files(str(image))
        expect(page.locator("#top5")).to_contain_text("%")
        expect(page.locator("#attribution img")).to_be_visible()
        expect(page.locator("#gradcam img")).to_be_visible()
        save(page, "classify")

        tab(page, "Filters")
        expect(page.locator("#bvlc-grid img")).to_be_visible()
        expect(page.locator("#filters-summary")).to_contain_text("group 0")
        expect(page.locator("#filter-grid img")).to_be_visible()
        page.get_by_role("button", name="Show this filter on my image").click()
        expect(page.locator(".block:has(> [data-testid='block-label']:has-text('activation map')) img")).to_be_visible()
        save(page, "filters")

        tab(page, "Layers")
        page.get_by_role("button", name="Next ▶").click()
        expect(page.locator("#walk-info")).to_contain_text("Step 1 of")
        save(page, "layers")

        tab(page, "Embeddings")
        page.get_by_role("button", name=re.compile("Build the map")).click()
        expect(page.locator("#umap img")).to_be_visible()
        save(page, "embeddings")

        tab(page, "About")
        expect(page.locator("#about-facts")).to_contain_text("Parameters")
        save(page, "about")
        browser.close()
    return saved


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/screenshots", help="folder for the PNGs (created)")
    ap.add_argument("--data", default=None, help="ImageFolder for the Embeddings tab (default: a sample of the "
                                                 "shared flowers, else a synthetic folder)")
    ap.add_argument("--per-class", type=int, default=40,
                    help="photos per class sampled from the shared flowers (0 = the whole set; default 40)")
    ap.add_argument("--image", default=None, help="photo to upload (default: the held-out rose among the app's examples)")
    ap.add_argument("--weights", default=None, help="passed to the app's --weights (default: the app's own default, the shipped flowers model)")
    ap.add_argument("--width", type=int, default=1280, help="browser width in px (default 1280)")
    ap.add_argument("--timeout", type=float, default=180, help="seconds to wait for each step (default 180)")
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image = Path(args.image) if args.image else default_image()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="alexnet-screenshots-") as tmp:
        work = Path(tmp)
        data = Path(args.data) if args.data else default_data(work, args.per_class)
        extra = ("--weights", args.weights) if args.weights else ()
        print(f"starting the app (data: {data}, image: {image.name})", flush=True)
        url, proc, log = start_server(work, data, args=extra, timeout=180)
        try:
            saved = shoot(url, image, out, args.width, args.timeout)
        except Exception:
            print(f"--- server log ({log}) ---\n{log.read_text()[-3000:]}", file=sys.stderr)
            raise
        finally:
            stop_server(proc)
    print(f"{len(saved)} screenshots in {out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
