"""Open a report in headless Chromium: check that every image decoded and nothing logged an error,
and take screenshots (``python -m normbench.report.screenshot REPORT.html OUT.png``)."""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "chrome")
# No network, no first-run UI, no background services: the page must stand on its own.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
)

# Injected first in <head> so it also sees errors raised by anything later in the page.
# On load it writes the verdict into the DOM, where --dump-dom can read it.
PROBE = """<script>
window.__nbErrors = [];
window.addEventListener('error', function (e) {
  var t = e.target || {};
  window.__nbErrors.push(t.tagName ? 'failed to load ' + t.tagName.toLowerCase() + ' ' +
    String(t.src || t.href || '').slice(0, 60) : String(e.message));
}, true);
(function () { var ce = console.error; console.error = function () {
  window.__nbErrors.push(Array.prototype.join.call(arguments, ' ')); ce.apply(console, arguments); \
}; })();
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                   .map(function (i) { return i.alt || String(i.src).slice(0, 60); });
  var pre = document.createElement('pre'); pre.id = 'nb-check';
  pre.textContent = JSON.stringify({images: imgs.length, broken: broken, errors: window.__nbErrors,
    widths: imgs.map(function (i) { return i.naturalWidth; })});
  document.body.appendChild(pre);
});
</script>"""


@dataclass
class PageCheck:
    """What the browser saw: image count, images that did not decode, errors logged."""

    images: int
    broken: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.broken and not self.errors


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or ``None``; ``$CHROMIUM`` overrides the search."""
    for name in (os.environ.get("CHROMIUM"), *CANDIDATES):
        if name and (path := shutil.which(name)):
            return path
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="nb-chromium-") as profile:
        return subprocess.run(
            [*args[:1], *FLAGS, f"--user-data-dir={profile}", *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _browser(chromium: str | None) -> str:
    path = chromium or find_chromium()
    if path is None:
        raise FileNotFoundError("no Chromium found (apt-get install -y chromium, or set $CHROMIUM)")
    return path


def check_page(html_path: Path, *, chromium: str | None = None, timeout: float = 90) -> PageCheck:
    """Load ``html_path`` (a copy with the probe injected) and report images and errors."""
    text = Path(html_path).read_text(encoding="utf-8")
    probed = re.sub(r"<head[^>]*>", lambda m: m.group(0) + PROBE, text, count=1)
    if probed == text:
        probed = PROBE + text
    with tempfile.TemporaryDirectory(prefix="nb-page-") as tmp:
        page = Path(tmp) / Path(html_path).name
        page.write_text(probed, encoding="utf-8")
        proc = _run([_browser(chromium), "--dump-dom", page.resolve().as_uri()], timeout)
    match = re.search(r'<pre id="nb-check">(.*?)</pre>', proc.stdout, re.S)
    if not match:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(
            f"the page never finished loading in Chromium (exit {proc.returncode}): "
            + " | ".join(tail)
        )
    data = json.loads(html.unescape(match.group(1)))
    return PageCheck(data["images"], data["broken"], data["errors"], data.get("widths", []))


def screenshot(
    html_path: Path,
    png_path: Path,
    *,
    width: int = 1280,
    height: int = 2400,
    chromium: str | None = None,
    timeout: float = 90,
) -> Path:
    """Screenshot the top ``width`` × ``height`` pixels of a page into ``png_path``."""
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    proc = _run(
        [
            _browser(chromium),
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            Path(html_path).resolve().as_uri(),
        ],
        timeout,
    )
    if not png_path.exists() or png_path.stat().st_size == 0:
        raise RuntimeError(
            f"Chromium wrote no screenshot (exit {proc.returncode}): "
            + " | ".join(proc.stderr.strip().splitlines()[-3:])
        )
    return png_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Check a normbench report.html in headless Chromium "
        "and save a screenshot, e.g. for reports/<suite>/screenshot.png."
    )
    ap.add_argument("html", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    args = ap.parse_args(argv)
    check = check_page(args.html)
    screenshot(args.html, args.png, width=args.width, height=args.height)
    print(
        f"{args.png}: {check.images} images, {len(check.broken)} broken, {len(check.errors)} errors"
    )
    for problem in check.broken + check.errors:
        print(f"  {problem}", file=sys.stderr)
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
