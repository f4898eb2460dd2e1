"""Open a `trkx display` page in a real headless browser (Debian's Chromium) and check that
plotly drew it: the page's SVG layers, the WebGL canvases of the 2D/3D views and the title are
in the DOM after the scripts ran; then take a screenshot.

    apt-get install chromium
    python benchmarks/display_check.py runs/default/display/event<ID>.html docs/images/display_event.png
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--window-size=1500,1150", "--virtual-time-budget=20000", "--hide-scrollbars"]


def browser() -> str | None:
    """The Chromium binary on this machine, if any."""
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def rendered_dom(html: Path, binary: str) -> str:
    """The page's DOM after its scripts ran."""
    out = subprocess.run([binary, *FLAGS, "--dump-dom", html.resolve().as_uri()], capture_output=True,
                         text=True, timeout=180)
    return out.stdout


def check_page(dom: str) -> dict:
    """What plotly drew: SVG layers, WebGL containers, subplot titles, legend entries."""
    return {"svg_layers": len(re.findall(r'class="main-svg"', dom)),
            "webgl_containers": len(re.findall(r"gl-container", dom)),
            "subplot_titles": sum(t in dom for t in ("x-y", "r-z", "3D", "graph edges by")),
            "legend_entries": len(re.findall(r'class="traces"', dom))}


def screenshot(html: Path, png: Path, binary: str) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([binary, *FLAGS, f"--screenshot={png.resolve()}", html.resolve().as_uri()], capture_output=True,
                   timeout=180, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("png", type=Path, nargs="?", help="Where the screenshot goes (default: beside the page).")
    args = ap.parse_args()
    binary = browser()
    if binary is None:
        print("no Chromium on this machine (apt-get install chromium)", file=sys.stderr)
        return 2
    found = check_page(rendered_dom(args.html, binary))
    print(", ".join(f"{k} {v}" for k, v in found.items()))
    ok = found["svg_layers"] >= 2 and found["webgl_containers"] >= 1 and found["subplot_titles"] == 4
    png = args.png or args.html.with_suffix(".browser.png")
    screenshot(args.html, png, binary)
    print(f"{'rendered' if ok else 'NOT rendered'}; screenshot -> {png}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
