"""Render the report as a reader sees it: headless Chromium (Debian's `chromium`) at 1400 px wide, the first
screen and the whole page, into docs/img/. Checks what the README promises: the first screen holds the budget
answer and the trilemma figure.

    python scripts/screenshot_report.py [results/report/index.html] [--out docs/img]

The page's height is read from Chromium itself (a copy of the page writes document.body.scrollHeight into its
title, which --dump-dom returns), so the full-page image is the page's own length.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH, FIRST_SCREEN = 1400, 900
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
         "--virtual-time-budget=3000"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    sys.exit("no Chromium found: `apt-get install chromium` (Debian) and run again")


def page_height(browser: str, index: Path) -> int:
    probe = index.with_name(".height-probe.html")
    text = index.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", "<script>window.addEventListener('load', () => "
                                              "{document.title = 'H=' + document.body.scrollHeight;});</script></body>"))
    try:
        dom = subprocess.run([browser, *FLAGS, f"--window-size={WIDTH},{FIRST_SCREEN}", "--dump-dom", probe.as_uri()],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    finally:
        probe.unlink()
    found = re.search(r"<title>H=(\d+)</title>", dom)
    if not found:
        sys.exit("Chromium did not report the page's height")
    return int(found.group(1))


def shoot(browser: str, index: Path, out: Path, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{height}",
                        f"--screenshot={out}", index.as_uri()], capture_output=True, timeout=180, check=True)
    print(f"{out} ({WIDTH} x {height} px)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("index", type=Path, nargs="?", default=Path("results/report/index.html"))
    p.add_argument("--out", type=Path, default=Path("docs/img"))
    args = p.parse_args()
    index = args.index.resolve()
    if not index.exists():
        sys.exit(f"{index} not found: run `trilemma-bench report --results results` first")
    browser = chromium()
    args.out.mkdir(parents=True, exist_ok=True)
    shoot(browser, index, args.out / "report-first-screen.png", FIRST_SCREEN)
    height = page_height(browser, index)
    shoot(browser, index, args.out / "report-full-page.png", height)
    print(f"page height {height} px at {WIDTH} px wide")


if __name__ == "__main__":
    main()
