"""Screenshots of a report.html in headless Chromium (selenium + chromedriver), for the README.

    python tools/screenshots.py reports/quickstart/report.html reports/quickstart

writes screenshot.png (the top), screenshot-curves.png (the interactive curves, hovered) and
screenshot-tables.png (throughput strip and the sorted variants table).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def driver(width: int, height: int):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    d = driver(args.width, args.height)
    try:
        d.get(args.html.resolve().as_uri())
        time.sleep(0.3)
        d.save_screenshot(str(args.out / "screenshot.png"))
        d.execute_script("document.getElementById('curves').scrollIntoView()")
        svg = d.find_elements(By.CSS_SELECTOR, ".nb-panel svg")[0]
        ActionChains(d).move_to_element_with_offset(svg, 30, 10).perform()
        time.sleep(0.3)
        d.save_screenshot(str(args.out / "screenshot-curves.png"))
        table = d.find_element(By.CSS_SELECTOR, "#variants table.sortable")
        head = next(
            h
            for h in table.find_elements(By.CSS_SELECTOR, "thead th")
            if h.text.strip() == "final_test_acc"
        )
        head.click()
        head.click()  # descending: the best variant first
        d.execute_script("document.getElementById('variants').scrollIntoView()")
        time.sleep(0.3)
        d.save_screenshot(str(args.out / "screenshot-tables.png"))
    finally:
        d.quit()
    for name in ("screenshot.png", "screenshot-curves.png", "screenshot-tables.png"):
        print(args.out / name)


if __name__ == "__main__":
    main()
