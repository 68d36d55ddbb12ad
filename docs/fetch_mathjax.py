"""Fetch MathJax from the npm registry into ``docs/_static/mathjax/`` (git-ignored).

The site typesets math with this local copy (``mathjax_path`` in ``conf.py``), so
a built page loads nothing from another host. Run by ``make docs``; does nothing
when the pinned version is already there.

Usage: ``python docs/fetch_mathjax.py [--force]``
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MATHJAX_VERSION = "3.2.2"
DEST = Path(__file__).resolve().parent / "_static" / "mathjax"
# the file conf.py's mathjax_path names, relative to _static
ENTRY = "mathjax/tex-svg.js"


def installed_version() -> str | None:
    stamp = DEST / "VERSION"
    if stamp.is_file() and (DEST / "tex-svg.js").is_file():
        return stamp.read_text().strip()
    return None


def fetch(force: bool = False) -> Path:
    """Install MathJax's ``es5`` build into :data:`DEST`; return the entry script's path."""
    if not force and installed_version() == MATHJAX_VERSION:
        return DEST / "tex-svg.js"
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("fetch_mathjax: npm is needed to fetch MathJax (apt-get install npm)")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--silent"],
            cwd=tmp, check=True, stdout=subprocess.DEVNULL,
        )
        (tarball,) = Path(tmp).glob("mathjax-*.tgz")
        with tarfile.open(tarball) as tar:
            members = [
                m for m in tar.getmembers()
                if (m.name.startswith("package/es5/") or m.name == "package/LICENSE")
                and (m.isfile() or m.isdir())
            ]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **safe)
        if DEST.exists():
            shutil.rmtree(DEST)
        shutil.copytree(Path(tmp) / "package" / "es5", DEST)
        shutil.copy(Path(tmp) / "package" / "LICENSE", DEST / "LICENSE")
    (DEST / "VERSION").write_text(MATHJAX_VERSION + "\n")
    return DEST / "tex-svg.js"


if __name__ == "__main__":
    path = fetch(force="--force" in sys.argv[1:])
    print(f"MathJax {MATHJAX_VERSION} at {path}")
