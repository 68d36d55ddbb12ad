"""Check the built site as a reader would see it. Run by ``make docs``.

Usage::

    python docs/check_site.py [BUILD_DIR] [--page notebooks/01_integral.html]

Checks, failing (exit 1) on the first category that does not hold:

1. **Nothing is loaded from another host.** Every built HTML page is scanned for
   ``script``/``link``/``img``/``iframe``/``source``/... tags whose ``src``,
   ``href``, ``srcset``, ``data`` or ``poster`` points to ``http(s)://`` or
   ``//`` (plain ``<a href>`` hyperlinks are fine), and every CSS file for
   ``url(http...)`` / ``@import``.
2. **Math is typeset, offline.** Headless Chromium (Debian's ``chromium``) opens
   a notebook page and the notation page with every host name unresolvable
   (``--host-resolver-rules``), runs their JavaScript (``--virtual-time-budget``)
   and dumps the DOM: each page must contain as many MathJax ``mjx-container``
   elements as it has math spans, and no MathJax error.
3. **The figures are there.** The notebook page's ``<img>`` plots exist, are
   non-empty PNGs and not blank; a screenshot of the page
   (``docs/_build/screenshot.png``) is not blank and shows plot colours.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

DOCS = Path(__file__).resolve().parent
DEFAULT_BUILD = DOCS / "_build" / "html"
DEFAULT_PAGE = "notebooks/01_integral.html"
MATH_PAGE = "notation.html"
SCREENSHOT = DOCS / "_build" / "screenshot.png"

# attributes that make the browser fetch something, per tag
LOADING_ATTRS = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "track": ("src",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
    "input": ("src",),
}
# <link rel=...> values that only name a resource, never fetch it
NON_LOADING_RELS = {"canonical", "alternate", "author", "license", "help", "search", "next",
                    "prev", "index", "top", "up", "bookmark", "nofollow", "noopener"}
CSS_REMOTE = re.compile(r"""(url\(\s*['"]?\s*(https?:)?//|@import\s+['"](https?:)?//)""", re.I)


def is_remote(url: str) -> bool:
    url = url.strip()
    return url.startswith("//") or urlparse(url).scheme in ("http", "https")


class _LoadScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.remote: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs_d = {k: (v or "") for k, v in attrs}
        if tag == "style":
            self._in_style = True
        if "style" in attrs_d and CSS_REMOTE.search(attrs_d["style"]):
            self.remote.append(f"<{tag} style=...> {attrs_d['style'][:80]}")
        names = LOADING_ATTRS.get(tag, ())
        if tag == "link":
            rels = set(attrs_d.get("rel", "").lower().split())
            if rels and rels <= NON_LOADING_RELS:
                return
        for name in names:
            value = attrs_d.get(name)
            if not value:
                continue
            urls = [part.strip().split(" ")[0] for part in value.split(",")] if "srcset" in name \
                else [value]
            for url in urls:
                if is_remote(url):
                    self.remote.append(f"<{tag} {name}={url!r}>")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style and CSS_REMOTE.search(data):
            self.remote.append(f"<style> {data.strip()[:80]}")


def scan_external_loads(build: Path) -> list[str]:
    """Every place in the built site that would load something from another host."""
    problems = []
    for page in sorted(build.rglob("*.html")):
        scanner = _LoadScanner()
        scanner.feed(page.read_text(errors="replace"))
        problems += [f"{page.relative_to(build)}: {r}" for r in scanner.remote]
    for css in sorted(build.rglob("*.css")):
        for m in CSS_REMOTE.finditer(css.read_text(errors="replace")):
            problems.append(f"{css.relative_to(build)}: ...{m.group(0)}...")
    return problems


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("check_site: no chromium on PATH "
             "(make docs installs Debian's `chromium` with apt-get)")


def chromium(args: list[str], timeout: int = 120) -> str:
    """Run headless Chromium on a fresh profile with every host name unresolvable."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--mute-audio", f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--allow-file-access-from-files",
            *args,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"chromium failed ({res.returncode}): {res.stderr[-2000:]}")
        return res.stdout


def dump_dom(page: Path) -> str:
    return chromium(["--virtual-time-budget=30000", "--dump-dom", page.as_uri()])


def count_math_spans(html: str) -> int:
    """Math elements Sphinx/MyST emit for MathJax: ``<span|div class="math ...">``."""
    return len(re.findall(r"<(?:span|div)\s+class=\"math\b[^\"]*\"", html))


def check_math(build: Path, rel: str) -> str:
    page = build / rel
    static = page.read_text()
    expected = count_math_spans(static)
    if expected == 0:
        raise AssertionError(f"{rel}: no math on the page to check")
    dom = dump_dom(page)
    typeset = dom.count("<mjx-container")
    errors = len(re.findall(r"data-mjx-error|<mjx-merror", dom))
    if errors:
        raise AssertionError(f"{rel}: MathJax reported {errors} error(s)")
    if typeset < expected:
        raise AssertionError(
            f"{rel}: {typeset} mjx-container elements for {expected} math spans: "
            "MathJax did not typeset the page (is docs/_static/mathjax/ there?)"
        )
    return f"{rel}: {typeset} formulas typeset by MathJax, offline, no errors"


def _png_stats(path: Path):
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(path)  # float in [0, 1], (H, W, 3 or 4)
    rgb = np.asarray(img, dtype=float)[..., :3]
    return rgb, float(rgb.std())


def check_figures(build: Path, rel: str) -> str:
    page = build / rel
    dom = dump_dom(page)
    srcs = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+\.png)\"", dom)
    plots = [s for s in srcs if "_images/" in s]
    if not plots:
        raise AssertionError(f"{rel}: no plot <img> in the rendered page")
    for src in plots:
        path = (page.parent / unquote(src)).resolve()
        if not path.is_file() or path.stat().st_size == 0:
            raise AssertionError(f"{rel}: figure {src} is missing or empty")
        rgb, std = _png_stats(path)
        if std < 0.02 or min(rgb.shape[:2]) < 50:
            raise AssertionError(f"{rel}: figure {src} looks blank (std {std:.3f})")
    return f"{rel}: {len(plots)} figures present, non-empty and not blank"


def check_screenshot(build: Path, rel: str, out: Path) -> str:
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    chromium(["--virtual-time-budget=30000", "--window-size=1400,4200",
              f"--screenshot={out}", (build / rel).as_uri()])
    if not out.is_file() or out.stat().st_size == 0:
        raise AssertionError("chromium wrote no screenshot")
    rgb, std = _png_stats(out)
    ink = float((rgb.min(axis=-1) < 0.9).mean())  # share of non-white pixels
    # matplotlib's first two default colours, C0 blue and C1 orange, as in the plots
    palette = np.array([[0x1F, 0x77, 0xB4], [0xFF, 0x7F, 0x0E]]) / 255.0
    dist = np.abs(rgb[..., None, :] - palette[None, None]).max(axis=-1).min(axis=-1)
    plot_pixels = int((dist < 0.08).sum())
    if std < 0.05 or ink < 0.01:
        raise AssertionError(f"screenshot {out} is blank (std {std:.3f}, ink {ink:.3%})")
    if plot_pixels < 500:
        raise AssertionError(f"screenshot {out} shows no plot colours ({plot_pixels} pixels)")
    shown = out.relative_to(DOCS.parent) if out.is_relative_to(DOCS.parent) else out
    return (f"screenshot {shown}: {rgb.shape[1]}x{rgb.shape[0]}, {ink:.1%} ink, "
            f"{plot_pixels} pixels in plot colours")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", nargs="?", type=Path, default=DEFAULT_BUILD)
    ap.add_argument("--page", default=DEFAULT_PAGE, help="notebook page to open in Chromium")
    ap.add_argument("--screenshot", type=Path, default=SCREENSHOT)
    args = ap.parse_args(argv)
    build = args.build.resolve()
    if not (build / "index.html").is_file():
        print(f"check_site: no built site at {build} (run make docs)", file=sys.stderr)
        return 1

    pages = list(build.rglob("*.html"))
    remote = scan_external_loads(build)
    if remote:
        print(f"FAIL: {len(remote)} external load(s):", *remote[:50], sep="\n  ")
        return 1
    print(f"ok: {len(pages)} pages, nothing loaded from another host")

    try:
        for line in (
            check_math(build, args.page),
            check_math(build, MATH_PAGE),
            check_figures(build, args.page),
            check_screenshot(build, args.page, args.screenshot.resolve()),
        ):
            print("ok:", line)
    except (AssertionError, RuntimeError, subprocess.TimeoutExpired) as e:
        print("FAIL:", e)
        return 1
    print("check_site: the site passes the reader check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
