"""The explorer in a real browser: headless Chromium (Debian's package) driven by Playwright.

Every view is clicked through and compared with what minicnn computes in this process:
the prediction with ``model.predict``, the convolution view's dot product with the very
activation the heatmap shows. No browser is downloaded: Playwright drives the system Chromium.
"""

import base64
import shutil

import numpy as np
import pytest
from explore_fixture import serving, tiny_run

from minicnn.datasets import standardize
from minicnn.explore import Explorer
from minicnn.interop import load_any

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


def open_page(browser, base):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    return page, errors


def shown_probs(page):
    return np.asarray(page.eval_on_selector("#bars", "b => JSON.parse(b.dataset.probs)"), np.float64)


def expected_probs(explorer, pixels):
    return explorer.model.predict(standardize(pixels[None], explorer.mean, explorer.std))[0]


def server_pixels(page, shape):
    b64 = page.evaluate("() => explorer.forward.pixels")
    return np.frombuffer(base64.b64decode(b64), np.uint8).reshape(shape)


def heatmap_value(page, layer, row, col, channel):
    """The number the overview's heatmap was drawn from (the array the page received)."""
    return page.evaluate(
        """([l, r, c, ch]) => { const o = explorer.forward.layers[l]; const v = o.values;
            return v[(r * o.shape[1] + c) * o.shape[2] + ch]; }""",
        [layer, row, col, channel],
    )


def canvases_not_blank(page, selector):
    """For each canvas: (every pixel drawn (opaque), more than one colour)."""
    return page.eval_on_selector_all(
        selector,
        """cs => cs.map(c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let opaque = true, first = d.slice(0, 4).join(), varied = false;
            for (let i = 0; i < d.length; i += 4) { if (d[i + 3] !== 255) opaque = false;
              if (!varied && [d[i], d[i + 1], d[i + 2], d[i + 3]].join() !== first) varied = true; }
            return [opaque, varied]; })""",
    )


def check_conv_detail(page):
    detail = page.eval_on_selector("#conv-detail", "d => ({...d.dataset})")
    conv, row, col, ch = (int(detail[k]) for k in ("layer", "row", "col", "channel"))
    total, output, activated = (float(detail[k]) for k in ("sum", "output", "activated"))
    assert total == pytest.approx(output, rel=1e-5, abs=1e-5), "the dot product plus bias is the activation"
    assert output == pytest.approx(heatmap_value(page, conv, row, col, ch), rel=1e-6, abs=1e-7)
    assert activated == pytest.approx(heatmap_value(page, conv + 1, row, col, ch), rel=1e-6, abs=1e-7)
    return conv, row, col, ch


def test_every_view_in_chromium(browser, tmp_path):
    path, data_dir, (x, y) = tiny_run(tmp_path)
    model, extra = load_any(path)
    explorer = Explorer(model, extra, test=(x, y), run_dir=path.parent, name=path.name)
    with serving(explorer) as base:
        page, errors = open_page(browser, base)
        assert "checkpoint" in page.inner_text("#norm-note")

        # Pick a test image by class: class 3's first thumbnail.
        page.select_option("#class-select", "3")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#thumbs canvas')].every(c => c.title.includes('class3'))"
        )
        index = int(page.get_attribute("#thumbs canvas", "data-index"))
        assert y[index] == 3
        page.click("#thumbs canvas")
        page.wait_for_function(f"() => document.querySelector('#image-caption').textContent.includes('#{index}')")
        expected = expected_probs(explorer, x[index])
        np.testing.assert_allclose(shown_probs(page), expected, rtol=1e-5, atol=1e-7)
        assert int(page.get_attribute("#bars", "data-top")) == int(np.argmax(expected))
        assert f"predicted: class{int(np.argmax(expected))}" in page.inner_text("#bars")

        # Overview: one opaque heatmap per channel of every (H, W, C) output, most of them not flat.
        maps = canvases_not_blank(page, ".maps canvas")
        assert len(maps) == sum(l.output_shape[-1] for l in model.layers if len(l.output_shape) == 3)
        assert all(opaque for opaque, _ in maps) and sum(varied for _, varied in maps) > len(maps) // 2
        assert page.locator(".layer .head").count() == len(model.layers) + 1

        # How a convolution computes one number: a channel of the LeakyReLU after conv 3, then a pixel.
        page.click(".maps canvas[data-layer='4'][data-channel='2']")
        page.wait_for_function("() => document.querySelector('#conv-detail').dataset.channel === '2'")
        assert check_conv_detail(page) == (3, 8, 8, 2)
        box = page.locator("#channel-canvas").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 3.5 / 16, box["y"] + box["height"] * 12.5 / 16)
        page.wait_for_function("() => document.querySelector('#conv-detail').dataset.row === '12'")
        assert check_conv_detail(page) == (3, 12, 3, 2)
        assert "bias" in page.inner_text("#conv-detail .equation")
        page.wait_for_function("() => document.querySelector('#stimulus-note').textContent.includes('channel 2')")
        assert canvases_not_blank(page, "#stimulus-canvas") == [[True, True]]
        # A first-layer channel: three input channels, every product written out.
        page.click(".maps canvas[data-layer='0'][data-channel='1']")
        page.wait_for_function("() => document.querySelector('#conv-detail').dataset.layer === '0'")
        check_conv_detail(page)
        assert page.inner_text("#conv-detail .equation").count("×") == 27

        # The learner's own picture: a PNG written here, decoded and resized by the browser.
        import matplotlib.image

        picture = tmp_path / "mine.png"
        yy, xx = np.mgrid[0:48, 0:64]
        matplotlib.image.imsave(picture, np.stack([xx / 63, yy / 47, 0.5 + 0 * xx], axis=-1))
        page.set_input_files("#file-input", str(picture))
        page.wait_for_function("() => document.querySelector('#image-caption').textContent === 'your picture'")
        sent = server_pixels(page, (32, 32, 3))
        assert sent[:, :, 0].std() > 10, "the picture's gradient arrived"
        np.testing.assert_allclose(shown_probs(page), expected_probs(explorer, sent), rtol=1e-5, atol=1e-7)
        check_conv_detail(page)  # the chosen channel follows the new image

        # The run: curves drawn, and a confusion cell lists its images.
        assert canvases_not_blank(page, "#curves")[0][1]
        counts = page.eval_on_selector_all("#confusion td", "tds => tds.map(td => +td.textContent)")
        cell = int(np.argmax(counts))
        page.locator("#confusion td").nth(cell).click()
        t, p = divmod(cell, 10)
        page.wait_for_function(f"() => document.querySelectorAll('#cell-thumbs canvas').length === {counts[cell]}")
        listed = page.eval_on_selector_all("#cell-thumbs canvas", "cs => cs.map(c => +c.dataset.index)")
        assert all(y[i] == t and explorer.predicted[i] == p for i in listed)
        page.click("#cell-thumbs canvas")
        page.wait_for_function(f"() => document.querySelector('#image-caption').textContent.includes('#{listed[0]}')")

        # The first layer's filters as colour tiles.
        assert [varied for _, varied in canvases_not_blank(page, "#filter-tiles canvas")] == [True] * 4
        page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
        assert (tmp_path / "explorer.png").stat().st_size > 10_000
        assert errors == [] and page.is_hidden("#error")


def test_a_keras_file_without_data(browser, tmp_path):
    from test_explore import KERAS_STACK

    model, extra = load_any(KERAS_STACK)
    explorer = Explorer(model, extra, name=KERAS_STACK.name)
    with serving(explorer) as base:
        page, errors = open_page(browser, base)
        assert "as they are" in page.inner_text("#norm-note")
        assert page.inner_text("#image-caption") == "a synthetic picture"
        sent = server_pixels(page, model.input_shape)
        np.testing.assert_allclose(shown_probs(page), expected_probs(explorer, sent), rtol=1e-5, atol=1e-7)
        page.click(".maps canvas[data-layer='0'][data-channel='0']")
        page.wait_for_function("() => document.querySelector('#conv-detail').dataset.layer === '0'")
        check_conv_detail(page)
        assert "no test images" in page.inner_text("#accuracy-note")
        page.screenshot(path=str(tmp_path / "keras.png"), full_page=True)
        assert errors == []
