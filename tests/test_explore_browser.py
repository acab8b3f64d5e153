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
        assert page.is_hidden("#confusion-heading") and page.is_hidden("#confusion")
        page.screenshot(path=str(tmp_path / "keras.png"), full_page=True)
        assert errors == []


def boxes_overlap(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def test_the_page_explains_what_it_draws(browser, tmp_path):
    """The newcomers' frictions: legends, the selection, every layer in view, labels, scales, one number format."""
    path, data_dir, (x, y) = tiny_run(tmp_path)
    model, extra = load_any(path)
    explorer = Explorer(model, extra, test=(x, y), run_dir=path.parent, name=path.name)
    with serving(explorer) as base:
        page, errors = open_page(browser, base)
        page.set_viewport_size({"width": 640, "height": 900})  # narrower than the overview's row of layers
        # The thumbnails' and the bars' marks are explained; the upload says it crops.
        assert "misclassified" in page.inner_text("#thumb-legend")
        assert "true label" in page.inner_text("#bars-legend")
        assert "centre-cropped" in page.inner_text("#upload-note")

        # The clicked thumbnail is highlighted, and only it.
        second = page.locator("#thumbs canvas").nth(1)
        index = second.get_attribute("data-index")
        second.click()
        page.wait_for_function(f"() => document.querySelector('#image-caption').textContent.includes('#{index}')")
        assert page.eval_on_selector_all("#thumbs canvas.selected", "cs => cs.map(c => c.dataset.index)") == [index]
        assert page.eval_on_selector("#thumbs canvas.selected", "c => getComputedStyle(c).outlineStyle") == "solid"

        # Every layer's block lies inside the overview panel: the layers wrap, nothing hides off to the right.
        panel = page.locator("#layers").bounding_box()
        blocks = [page.locator(".layer").nth(i).bounding_box() for i in range(page.locator(".layer").count())]
        assert len(blocks) == len(model.layers) + 1
        assert all(panel["x"] - 1 <= b["x"] and b["x"] + b["width"] <= panel["x"] + panel["width"] + 1 for b in blocks)

        # The last Dense layer's ten outputs are named by class, with the values the page received.
        rows = page.eval_on_selector_all(
            f".layer[data-layer='{len(model.layers) - 1}'] table.outputs tr",
            "trs => trs.map(tr => [tr.cells[1].textContent, +tr.cells[2].textContent])",
        )
        logits = page.evaluate(f"() => Array.from(explorer.forward.layers[{len(model.layers) - 1}].values)")
        assert [name for name, _ in rows] == [f"class{k}" for k in range(10)]
        np.testing.assert_allclose([v for _, v in rows], logits, atol=5e-4)

        # A chosen channel shows its colour scale: dark its minimum, bright its maximum.
        page.click(".maps canvas[data-layer='1'][data-channel='2']")
        page.wait_for_function("() => document.querySelector('#conv-detail').dataset.channel === '2'")
        channel = np.asarray(
            page.evaluate("() => { const o = explorer.forward.layers[1]; return Array.from(o.values); }")
        ).reshape(32, 32, 4)[:, :, 2]
        assert page.is_visible("#channel-scale") and page.locator("#overview-scale canvas.scale").is_visible()
        assert page.inner_text("#scale-min") == f"dark: min {channel.min():.4f}"
        assert page.inner_text("#scale-max") == f"bright: max {channel.max():.4f}"

        # The one-number view: one format (fixed point, 4 decimals), no number broken across lines,
        # the products in the grids' order (input channel 0's patch row by row, then channel 1's, ...).
        import re

        text = page.inner_text("#conv-detail")
        assert not re.search(r"\de[-+]?\d", text), "no exponent notation"
        numbers = re.findall(r"-?\d+\.\d+", text)
        assert numbers and all(re.fullmatch(r"-?\d+\.\d{4}", n) for n in numbers)
        assert page.eval_on_selector_all(".equation .term", "ts => ts.map(t => t.getClientRects().length)") == [1] * 31
        pairs = page.eval_on_selector_all(
            "#conv-detail .pair",
            """ps => ps.map(p => [...p.querySelectorAll('table')]
                .map(t => [...t.querySelectorAll('td')].map(td => td.textContent)))""",
        )
        products = [
            t.split("×") for t in page.eval_on_selector_all(".equation .term", "ts => ts.map(t => t.textContent)")[:27]
        ]
        assert [p for p, _ in products] == [v for patch, _ in pairs for v in patch]
        assert [k for _, k in products] == [v for _, kernel in pairs for v in kernel]

        # The curves: the legend off the plots, ticks on both axes.
        boxes = page.eval_on_selector("#curves", "c => JSON.parse(c.dataset.boxes)")
        assert len(boxes["plots"]) == 2 and len(boxes["legends"]) >= 2
        assert not any(boxes_overlap(legend, plot) for legend in boxes["legends"] for plot in boxes["plots"])
        assert min(boxes["yticks"]) >= 3 and boxes["xticks"] == [2, 2]
        page.screenshot(path=str(tmp_path / "narrow.png"), full_page=True)
        assert errors == []
