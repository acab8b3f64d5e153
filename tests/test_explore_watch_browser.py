"""Watching a run in a real browser (headless Chromium through Playwright, as test_explore_browser.py).

The issue's "done when": ``examples/train_cifar.py --explore`` trains on a tiny data set while the
page, polling the explorer beside it, shows the history growing epoch by epoch and the first layer's
filters changing, before the training process ends, without a page error.
"""

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading

import pytest
from cifar_fixture import TRAIN_SCRIPT, script_args
from conftest import signals_at_default
from explore_fixture import serving, tiny_run

from minicnn.explore import WatchedRun

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason='Playwright for Python is not installed: pip install -e ".[explore]"'
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no system Chromium: install it with `apt-get update && apt-get install -y chromium` (Debian/Ubuntu); "
    "Playwright's own browser download is not used",
)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def new_page(browser, base):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base + "/")
    return page, errors


def test_the_page_waits_for_the_first_epoch_then_shows_it(browser, tmp_path):
    model_path, _, test = tiny_run(tmp_path)
    folder = tmp_path / "watched"
    watched = WatchedRun(folder, test=test)
    with serving(watched) as base:
        page, errors = new_page(browser, base)
        page.wait_for_selector("#waiting:not([hidden])", timeout=30_000)
        assert "start the training" in page.inner_text("#waiting-note")
        folder.mkdir()
        shutil.copy(model_path.parent / "history.csv", folder / "history.csv")
        page.wait_for_function("document.getElementById('waiting-note').textContent.includes('has started')")
        assert page.is_hidden("#main")
        shutil.copy(model_path, folder / "model.npz")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        assert page.is_hidden("#waiting") and page.is_visible("#main")
        assert "2 epoch(s) in history.csv" in page.inner_text("#watch-status")
        assert page.eval_on_selector_all("#per-class .bar", "bars => bars.length") == 10
        assert page.is_hidden("#timeline")  # no filters.npz in this folder
    watched.close()
    assert not errors, errors


def read_lines(stream, lines):
    for line in stream:
        lines.put(line)
    lines.put(None)


def address_from(lines, proc):
    """The explorer's address, from the training script's output."""
    seen = []
    while True:
        line = lines.get(timeout=120)
        if line is None:
            raise AssertionError(f"the script ended (status {proc.wait()}) without an address:\n{''.join(seen)}")
        seen.append(line)
        if line.startswith("explorer: http://"):
            return line.split()[1]


@pytest.mark.slow
def test_train_cifar_explore_shows_the_run_growing_while_it_trains(browser, cifar_dir, tmp_path):
    out = tmp_path / "run"
    args = script_args(cifar_dir, out, "--explore", "--no-plots", epochs=500, val_split=40, batch_size=40, seed=1)
    args += ["--explore-port", "0", "--verbose", "0"]
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN_SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=signals_at_default,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        base = address_from(lines, proc)
        page, errors = new_page(browser, base)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        first = page.evaluate("() => [explorer.run.epochs, document.getElementById('filter-tiles').dataset.tiles]")
        # Three different epoch counts seen by the page's own polling, while the training still runs.
        page.wait_for_function("() => new Set(explorer.seen).size >= 3", timeout=60_000)
        later = page.evaluate("() => [explorer.run.epochs, document.getElementById('filter-tiles').dataset.tiles]")
        assert proc.poll() is None, "the training ended before the page was checked: make the run longer"
        seen = page.evaluate("() => explorer.seen")
        assert later[0] > first[0] and len(set(seen)) >= 3, seen  # epoch by epoch, as polled
        assert later[1] != first[1]  # the filters changed
        assert seen == sorted(seen)
        epochs = page.evaluate("() => explorer.timeline.epochs")
        assert epochs[0] == 0 and epochs == list(range(len(epochs))) and len(epochs) >= 2
        assert "Watching" in page.inner_text("#watch-status")
        assert not errors, errors
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the script stops, and its explorer with it
        status = proc.wait(timeout=120)
    output = []
    while (line := lines.get(timeout=30)) is not None:
        output.append(line)
    text = "".join(output)
    assert status == 130, text
    assert "explorer stopped with the training" in text, text
    # The page says the server is gone rather than failing silently.
    page.wait_for_selector("#watch-status.stopped", timeout=30_000)
    assert "python -m minicnn.explore" in page.inner_text("#watch-status")
