"""Screenshots of the app's main tabs for the README: starts the real server, drives headless Chromium.

    python tests/make_screenshots.py --out docs/screenshots
    python tests/make_screenshots.py --out /tmp/shots --data ~/photos

The server runs as a new user's would (app_server.NEWCOMER_ENV): a throw-away folder with its own cache,
no ../shared, no --data and no network, so it shows what a fresh install shows: the shipped flowers
model, and in Embeddings the map shipped with it of the shipped flowers pack (drawn when the tab
opens). `--data DIR` shows another image folder instead. The photo uploaded is the held-out rose
shipped among the app's examples (assets/examples/), or --image.

Writes classify.png, filters.png, layers.png, embeddings.png and about.png (full page, --width px wide), the
views of issue 24 on the same photo (lrp.png: the LRP map; concepts.png; attack.png: PGD turning it into tulips;
compare.png: the flowers model beside the untrained one), and
the classroom views in English and 简体中文 (a browser started in each locale): diagram-<lang>.png (the network
drawn, a block clicked), unit-<lang>.png (a conv1 unit's arithmetic after a click on the photo),
tour-<lang>.png (the tour's conv1 step) and tricks-<lang>.png (the paper's tricks), lang = en or zh-CN.
The Chinese pictures need a CJK font for Chromium (Debian: `apt-get install -y fonts-noto-cjk`); without
one the characters are drawn as empty boxes, so the script says so and stops before writing them.
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

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


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


def cjk_font() -> bool:
    """Whether fontconfig knows a font with Chinese glyphs (Chromium draws boxes without one)."""
    import subprocess
    try:
        return bool(subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, timeout=20).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return False


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
        expect(page.locator("#umap img")).to_be_visible()                  # drawn when the tab opens
        page.get_by_role("button", name=re.compile("Build the map")).click()   # the upload placed, its neighbours
        expect(page.locator("#neighbours")).to_contain_text(", by ")
        save(page, "embeddings")

        tab(page, "About")
        expect(page.locator("#about-facts")).to_contain_text("Parameters")
        save(page, "about")

        # issue 24's four views, on the same photo: LRP, the concepts, the network fooled, two models
        tab(page, "Classify & Explain")
        page.locator("#method input").click()
        page.get_by_role("option", name=re.compile(r"^LRP")).click()
        expect(page.locator("#attribution-npy a")).to_have_attribute("href", re.compile(r"lrp-"))
        save(page, "lrp")
        tab(page, "Concepts")
        page.locator("#concepts-go").click()
        expect(page.locator("#concepts-dictionary img")).to_be_visible()
        save(page, "concepts")
        tab(page, "Fool the network")
        page.get_by_label("PGD (many small steps)").check()
        eps = page.locator("#attack-eps input[type=number]")
        eps.fill("8")                                   # 8/255: enough for PGD to reach tulips from the rose
        eps.press("Enter")
        page.locator("#attack-target input").click()
        page.get_by_role("option", name="tulips", exact=True).click()
        page.locator("#attack-go").click()
        expect(page.locator("#attack-text")).to_contain_text("now says tulips")
        save(page, "attack")
        tab(page, "Two models")
        page.locator("#compare-go").click()
        expect(page.locator("#compare-b-fc7 img")).to_be_visible()
        save(page, "compare")
        for locale, lang in (("en-US", "en"), ("zh-CN", "zh-CN")):
            if lang == "zh-CN" and not cjk_font():
                print("  no CJK font (fc-list :lang=zh finds none): skipping the zh-CN pictures; install one, e.g. "
                      "apt-get install -y fonts-noto-cjk", file=sys.stderr)
                continue
            saved += classroom(browser, url, image, out, width, ms, locale, lang)
        browser.close()
    return saved


def classroom(browser, url: str, image: Path, out: Path, width: int, ms: int, locale: str, lang: str) -> list[Path]:
    """The diagram, a unit's arithmetic, a tour step and the tricks, in a browser whose language is `locale`."""
    from playwright.sync_api import expect
    from app.i18n import dictionary
    words = dictionary(lang)["static"]
    saved = []
    ctx = browser.new_context(viewport={"width": width, "height": 900}, locale=locale)
    page = ctx.new_page()
    page.set_default_timeout(ms)

    def save(locator, name):
        locator.scroll_into_view_if_needed()
        page.wait_for_timeout(800)    # let images finish painting
        path = out / f"{name}-{lang}.png"
        page.screenshot(path=str(path))
        shrink(path)
        saved.append(path)
        print(f"  wrote {path}", flush=True)

    def tab(tab_id):
        t = page.get_by_role("tab", name=words[f"tab_{tab_id}"], exact=True)
        t.click()
        expect(t).to_have_attribute("aria-selected", "true")

    page.goto(url, wait_until="domcontentloaded")
    page.locator("#upload").wait_for(state="visible")
    page.locator("#upload input[type=file]").set_input_files(str(image))
    expect(page.locator("#top5")).to_contain_text("%")
    tab("layers")
    diagram = page.locator("#diagram img")
    expect(diagram).to_be_visible()
    page.wait_for_function("el => el.complete && el.naturalWidth > 1000", arg=diagram.element_handle())
    box = diagram.bounding_box()
    diagram.click(position={"x": box["width"] * 0.47, "y": box["height"] * 0.42})    # a conv3/conv4 block
    expect(page.locator("#walk-picture img")).to_be_visible()
    save(diagram, "diagram")
    page.get_by_text(words["unit_open"]).click()
    page.locator("#unit-show").click()
    photo = page.locator("#unit-photo img")
    expect(photo).to_be_visible()
    pb = photo.bounding_box()
    photo.click(position={"x": pb["width"] * 0.3, "y": pb["height"] * 0.35})
    expect(page.locator("#unit-arithmetic")).to_contain_text("conv1")
    save(page.locator("#unit-arithmetic"), "unit")
    page.locator("#tour").click()
    for k in range(1, 4):                                # the third step: conv1, one unit's arithmetic
        page.locator("#tour-next").click()
        expect(page.locator("#tour-title")).to_contain_text(f"{k} /")
    expect(page.locator("#tour-picture img")).to_be_visible()
    page.locator("#tour").scroll_into_view_if_needed()
    save(page.locator("#tour-title"), "tour")
    page.locator("#tour").get_by_text(words["tour_open"]).click()      # the tour folded away again
    tab("tricks")
    page.locator("#tricks-go").click()
    expect(page.locator("#trick-relu-img img")).to_be_visible()
    save(page.locator("#trick-relu-img"), "tricks")
    ctx.close()
    return saved


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/screenshots", help="folder for the PNGs (created)")
    ap.add_argument("--data", default=None, help="image folder for Embeddings and Retrain (default: none, as on a "
                                                 "fresh install: the shipped flowers pack)")
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
        data = Path(args.data) if args.data else None
        extra = ("--weights", args.weights) if args.weights else ()
        print(f"starting the app as a new user's (data: {data or 'the shipped pack'}, image: {image.name})", flush=True)
        url, proc, log = start_server(work, data, args=extra, timeout=180, newcomer=True)
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
