"""A browser that has never seen MLflow, as a new user's: Debian's Chromium, headless, a new empty profile for
each page, the page's scripts run before it is read (`--virtual-time-budget`)."""
from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = shutil.which("chromium")
# Chromium's own background connections: this machine has no network for them (they fail, many at a time)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def _chromium(url: str, *args: str, width: int = 1920, height: int = 1000, budget_ms: int = 20000) -> str:
    assert CHROMIUM, "chromium is not installed (make test installs it, as root)"
    # in /tmp: under a test's deep TMPDIR, Chromium's socket path is too long for a Unix socket (and it dies)
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="chromium-") as profile:
        done = subprocess.run([CHROMIUM, *FLAGS, f"--virtual-time-budget={budget_ms}", f"--user-data-dir={profile}",
                               f"--window-size={width},{height}", *args, url],
                              capture_output=True, text=True, timeout=120, env=os.environ | {"TMPDIR": "/tmp"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rendered_text(url: str, until: str, width: int = 2400) -> str:
    """The words of the page as a fresh browser shows it, one `|` between pieces of text, once `until` is among them
    (MLflow loads its charts' code on demand: on a busy machine a page can be read before they are drawn, so it is
    read again, each time allowed twice as long, three times at most). MLflow's runs table draws only the columns
    in view: the window is a wide screen's."""
    for budget_ms in (20000, 40000, 80000):
        dom = _chromium(url, "--dump-dom", width=width, budget_ms=budget_ms)
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
        text = re.sub(r"(\s*\|\s*)+", " | ", html.unescape(re.sub(r"<[^>]+>", " | ", text)))
        if until in text:
            break
    return text


def screenshot(url: str, path: Path, width: int = 1600, height: int = 860) -> None:
    """A PNG of the page, in 128 colours (a tenth of the bytes, the same picture to the eye)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    _chromium(url, f"--screenshot={path}", width=width, height=height, budget_ms=40000)
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)
