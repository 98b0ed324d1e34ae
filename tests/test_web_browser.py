"""The web page in a real browser: `micmon monitor --input ... --web` driven by headless Chromium.

Debian's chromium and chromium-driver through selenium (the Makefile installs them). Set
MICMON_WEB_SCREENSHOT=docs/web.png to refresh the screenshots in the docs (web.png, web-phone.png).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import background, beeps, encode
from mqtt_broker import free_port

MICMON = str(Path(sys.executable).with_name("micmon"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CONFIG = """\
monitor:
  hop: 0.5
  threshold: 0.6
  k: 2
  n: 3
  m: 2
  actions:
    - type: clip
      folder: clips
      pre_roll: 1
"""
#: Two sounds early on, then long enough a tail for the page to be looked at while it runs.
SOUNDS = ((1.5, 5.5), (11.0, 14.0))
SECONDS = 45.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver",
    ),
]


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rate = 44100
    signal_ = background(SECONDS, rate, np.random.default_rng(21))
    for start, end in SOUNDS:
        a = int(start * rate)
        signal_[a : a + int((end - start) * rate)] += beeps(end - start, rate)
    return encode(tmp_path_factory.mktemp("web") / "replay.wav", signal_, rate)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=960,900",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_events_appear_live_and_a_clip_plays(
    trained_model_dir: Path, replay: Path, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    (tmp_path / "micmon.yaml").write_text(CONFIG)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MICMON_CONFIG"}
    env.update(MICMON_NO_LIVE="1", HOME=str(tmp_path))
    log = (tmp_path / "monitor.err").open("w")
    proc = subprocess.Popen(
        [
            MICMON,
            "--config",
            str(tmp_path / "micmon.yaml"),
            "monitor",
            "--model",
            str(trained_model_dir),
            "--input",
            str(replay),
            "--json",
            "--web",
            f"127.0.0.1:{port}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    return True
            except OSError:
                return False

        _wait(up, 30, "the page to serve with audio flowing")
        browser.get(base + "/")
        # live updates: the level changes under our eyes
        level = browser.find_element(By.ID, "level")
        _wait(lambda: "dBFS" in level.text, 10, "a level in dBFS")
        texts = set()
        for _ in range(8):
            texts.add(
                browser.execute_script(
                    "return document.getElementById('health').textContent + "
                    "document.getElementById('level').textContent"
                )
            )
            time.sleep(0.25)
        assert len(texts) >= 2, texts  # the page changed within 2 s
        assert browser.find_element(By.CSS_SELECTOR, "[data-label=positive]")
        assert not browser.find_elements(By.CSS_SELECTOR, "[data-label=negative]")
        # both sounds appear in the list without reloading, each with a play button
        rows = _wait(
            lambda: (
                len(browser.find_elements(By.CSS_SELECTOR, "button.play")) >= 2
                and browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
            ),
            40,
            "two events with clips on the page",
        )
        assert len(rows) == 2 and all("positive" in row.text for row in rows)
        button = browser.find_element(By.CSS_SELECTOR, "button.play")
        clip = button.get_attribute("data-clip")
        button.click()
        _wait(
            lambda: browser.execute_script(
                "const a = document.getElementById('player');"
                "return a.error === null && a.readyState >= 1 && a.duration > 0;"
            ),
            10,
            "the browser to load the clip",
        )
        src = browser.execute_script("return document.getElementById('player').currentSrc")
        assert src == base + clip
        with urllib.request.urlopen(src, timeout=10) as response:
            assert response.status == 200 and response.headers["Content-Type"] == "audio/mpeg"
        # filters: another label shows nothing, the day of the events shows them again
        browser.execute_script(
            "const s = document.getElementById('filter-label');"
            "s.add(new Option('cry', 'cry')); s.value = 'cry';"
            "s.dispatchEvent(new Event('change'));"
        )
        _wait(
            lambda: not browser.find_elements(By.CSS_SELECTOR, "#events tbody tr"),
            10,
            "the label filter to empty the list",
        )
        browser.find_element(By.ID, "filter-clear").click()
        _wait(
            lambda: len(browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")) == 2,
            10,
            "the list to come back",
        )
        time.sleep(1.0)  # a little more of the score chart
        shot = tmp_path / "web.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        target = os.environ.get("MICMON_WEB_SCREENSHOT")
        # a phone screen: nothing wider than the viewport
        browser.set_window_size(390, 844)
        time.sleep(0.5)
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        phone = tmp_path / "web-phone.png"
        assert browser.save_screenshot(str(phone))
        if target:
            shutil.copy(shot, target)
            shutil.copy(phone, Path(target).with_name(f"{Path(target).stem}-phone.png"))
        with urllib.request.urlopen(base + "/api/events", timeout=10) as response:
            assert len(json.load(response)["events"]) == 2
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "monitor.err").read_text()
