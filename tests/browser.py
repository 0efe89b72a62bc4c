"""Debian's headless Chromium, driven by Selenium through Debian's chromedriver (the
`chromium` and `chromium-driver` packages, which `.ci/run` installs): for the tests that
check the HTML proof page in a real browser, and for `tools/proof_screenshot.py`."""
from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1"]
"""No network, no first-run or update traffic; works as root in a container."""


def unavailable() -> str | None:
    """Why the browser cannot be started here, or None."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        return (f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver "
                f"(.ci/run installs them)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install '.[test]'"
    return None


def start(profile: Path, width: int = 1280, height: int = 900):
    """A headless Chromium with a fresh profile in `profile`, its console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
