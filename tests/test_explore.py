"""The explorer's JSON API against a real server on a free loopback port: good paths, every bad input,
a burst of concurrent requests, and the command itself (start, serve, Ctrl-C)."""

import base64
import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import signals_at_default
from explore_fixture import serving, tiny_run

from minicnn.datasets import standardize
from minicnn.explore import Explorer
from minicnn.explore.__main__ import exposure_warning
from minicnn.interop import load_any

KERAS_STACK = Path(__file__).parent / "data" / "keras" / "stack_keras3.keras"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="module")
def explorer(run):
    path, _, test = run
    model, extra = load_any(path)
    return Explorer(model, extra, test=test, run_dir=path.parent, name=path.name)


@pytest.fixture(scope="module")
def url(explorer):
    with serving(explorer) as base:
        yield base


def call(base, path, body=None, raw=None, headers=None):
    """(status, JSON reply) for GET ``path``, or a POST of ``body`` as JSON (``raw``: bytes as they are)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers=headers or {})
    if data is not None and not headers:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        assert err.headers["Content-Type"] == "application/json", "an error page that is not JSON"
        return err.code, json.loads(err.read())


def raw_request(base, text: bytes):
    """Send ``text`` on a socket as it is; (status, JSON body) of the reply."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(text)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def decode(b64, dtype, shape):
    return np.frombuffer(base64.b64decode(b64), dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


# -- good paths ---------------------------------------------------------------------------------
def test_page_and_assets_are_served(url):
    for path, kind in [("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css")]:
        with urllib.request.urlopen(url + path, timeout=30) as reply:
            assert reply.headers["Content-Type"].startswith(kind)
            assert len(reply.read()) > 1000
    html = urllib.request.urlopen(url + "/", timeout=30).read().decode()
    assert "http" not in html.replace('name="viewport"', ""), "the page must not load anything from elsewhere"


def test_model_info_lists_every_layer(url, explorer):
    status, info = call(url, "/api/model")
    assert status == 200
    model = explorer.model
    assert [entry["output_shape"] for entry in info["layers"]] == [list(l.output_shape) for l in model.layers]
    assert [entry["params"] for entry in info["layers"]] == [l.count_params() for l in model.layers]
    assert info["params"] == model.count_params() and info["test_images"] == 40
    assert info["classes"][3] == "class3" and info["has_history"]
    assert "checkpoint" in info["normalisation"]["note"]
    assert info["layers"][1]["explains"] == 0 and "explains" not in info["layers"][2]


def test_forward_matches_predict_and_the_models_own_layers(url, run, explorer):
    _, _, (x, y) = run
    status, reply = call(url, "/api/forward", {"index": 7})
    assert status == 200 and reply["index"] == 7 and reply["label"] == int(y[7])
    expected = explorer.model.predict(standardize(x[7:8], explorer.mean, explorer.std))[0]
    np.testing.assert_allclose(reply["probs"], expected, rtol=1e-5, atol=1e-7)
    assert reply["top"] == int(np.argmax(expected))
    np.testing.assert_array_equal(decode(reply["pixels"], np.uint8, (32, 32, 3)), x[7])
    outs = explorer.model.activations(standardize(x[7:8], explorer.mean, explorer.std))
    for layer, out in zip(reply["layers"], outs):
        np.testing.assert_allclose(decode(layer["data"], np.float32, layer["shape"]), out[0], rtol=1e-5, atol=1e-6)


def test_uploaded_pixels_and_the_synthetic_picture(url, run):
    _, _, (x, _) = run
    by_index = call(url, "/api/forward", {"index": 2})[1]
    status, by_pixels = call(url, "/api/forward", {"pixels": x[2].reshape(-1).tolist()})
    assert status == 200 and by_pixels["source"] == "upload"
    np.testing.assert_allclose(by_pixels["probs"], by_index["probs"], rtol=1e-6)
    status, synthetic = call(url, "/api/forward", {"synthetic": True})
    assert status == 200 and synthetic["source"] == "synthetic" and abs(sum(synthetic["probs"]) - 1) < 1e-6


@pytest.mark.parametrize("layer,row,col", [(0, 0, 0), (0, 31, 17), (3, 7, 15), (3, 0, 0)])
def test_conv_dot_product_equals_the_forward_pass(url, explorer, layer, row, col):
    status, e = call(url, "/api/conv", {"image": {"index": 5}, "layer": layer, "channel": 1, "row": row, "col": col})
    assert status == 200
    assert np.asarray(e["patch"]).shape == np.asarray(e["kernel"]).shape == (3, 3, 4 if layer == 3 else 3)
    w = np.asarray(explorer.model.layers[layer].params["W"])[:, :, :, 1]
    np.testing.assert_array_equal(np.asarray(e["kernel"], np.float32), w)
    assert e["sum"] == pytest.approx(e["output"], rel=1e-5, abs=1e-5)
    assert e["sum"] == pytest.approx(float(np.sum(np.asarray(e["patch"]) * np.asarray(e["kernel"]))) + e["bias"])
    forward = call(url, "/api/forward", {"index": 5})[1]["layers"]
    after = layer + 1  # ReLU after layer 0, LeakyReLU after layer 3
    assert e["activation"] == ("ReLU" if layer == 0 else "LeakyReLU")
    assert e["activated"] == pytest.approx(
        float(decode(forward[after]["data"], np.float32, forward[after]["shape"])[row, col, 1])
    )
    assert e["output"] == pytest.approx(
        float(decode(forward[layer]["data"], np.float32, forward[layer]["shape"])[row, col, 1])
    )
    if row == 0 and col == 0:
        assert e["origin"] == [-1, -1] and np.all(np.asarray(e["patch"])[0] == 0), "the top row is padding"


def test_images_by_class_misclassified_and_confusion_cell(url, run, explorer):
    _, _, (_, y) = run
    status, reply = call(url, "/api/images?label=3")
    assert status == 200 and reply["total"] == int(np.sum(y == 3))
    assert all(im["label"] == 3 for im in reply["images"])
    wrong = call(url, "/api/images?wrong=1")[1]
    assert wrong["total"] == int(np.sum(explorer.predicted != y))
    status, run_info = call(url, "/api/run")
    confusion = np.asarray(run_info["confusion"])
    assert confusion.sum() == len(y) and run_info["history"]["epoch"] == [1.0, 2.0]
    t, p = np.unravel_index(np.argmax(confusion), confusion.shape)
    cell = call(url, f"/api/images?label={t}&predicted={p}")[1]
    assert cell["total"] == confusion[t, p] and all(im["predicted"] == p for im in cell["images"])
    assert call(url, "/api/images?start=4&count=3")[1]["images"][0]["index"] == 4


def test_stimulus_and_filters(url, explorer):
    status, s = call(url, "/api/stimulus?layer=3&channel=2")
    assert status == 200 and decode(s["pixels"], np.uint8, (32, 32, 3)).std() > 0
    assert call(url, "/api/stimulus?layer=3&channel=2")[1]["pixels"] == s["pixels"]  # cached, the same
    status, f = call(url, "/api/filters")
    assert status == 200 and f["shape"] == [3, 3, 3] and len(f["tiles"]) == 4
    tile = decode(f["tiles"][0], np.uint8, (3, 3, 3))
    assert tile.min() == 0 and tile.max() == 255


# -- every bad input -----------------------------------------------------------------------------
BAD = [
    ("GET", "/nope", None, 404, "no such path"),
    ("GET", "/api/nope", None, 404, "no such path"),
    ("GET", "/../pyproject.toml", None, 404, "no such path"),
    ("GET", "/static/../api.py", None, 404, "no such path"),
    ("POST", "/api/model", {}, 404, "no such path"),
    ("POST", "/api/forward", b"{not json", 400, "not valid JSON"),
    ("POST", "/api/forward", b"\xff\xfe", 400, "not valid JSON"),
    ("POST", "/api/forward", b"[" * 100000, 400, "nested too deeply"),
    ("POST", "/api/forward", [1, 2], 400, "must be an object"),
    ("POST", "/api/forward", {}, 400, "must name 'index', 'pixels'"),
    ("POST", "/api/forward", {"index": 40}, 404, "index must be in [0, 40), got 40"),
    ("POST", "/api/forward", {"index": -1}, 404, "index must be in [0, 40)"),
    ("POST", "/api/forward", {"index": "seven"}, 400, "index must be an integer"),
    ("POST", "/api/forward", {"index": True}, 400, "index must be an integer"),
    ("POST", "/api/forward", {"index": 1.5}, 400, "index must be an integer"),
    ("POST", "/api/forward", {"pixels": [0] * 100}, 400, "3072 integers (H*W*C for (32, 32, 3)), got 100 values"),
    ("POST", "/api/forward", {"pixels": "abc"}, 400, "got str"),
    ("POST", "/api/forward", {"pixels": [300] * 3072}, 400, "integers in [0, 255]"),
    ("POST", "/api/forward", {"pixels": [0.5] * 3072}, 400, "integers in [0, 255]"),
    ("POST", "/api/forward", {"synthetic": "yes"}, 400, "must name 'index'"),
    ("POST", "/api/conv", {"image": {"index": 0}, "layer": 1, "channel": 0, "row": 0, "col": 0}, 400, "not a Conv2D"),
    ("POST", "/api/conv", {"image": {"index": 0}, "layer": 99, "channel": 0, "row": 0, "col": 0}, 400, "layer must be"),
    ("POST", "/api/conv", {"image": {"index": 0}, "layer": 0, "channel": 4, "row": 0, "col": 0}, 400, "channel must"),
    ("POST", "/api/conv", {"image": {"index": 0}, "layer": 0, "channel": 0, "row": 32, "col": 0}, 400, "row must"),
    ("POST", "/api/conv", {"image": {"index": 0}, "layer": 3, "channel": 0, "row": 0, "col": 16}, 400, "col must"),
    ("POST", "/api/conv", {"layer": 0, "channel": 0, "row": 0, "col": 0}, 400, "the image must be an object"),
    ("POST", "/api/conv", "hello", 400, "must be a JSON object"),
    ("GET", "/api/stimulus?layer=2&channel=0", None, 400, "not a Conv2D"),
    ("GET", "/api/stimulus?layer=0&channel=-1", None, 400, "channel must be in"),
    ("GET", "/api/stimulus", None, 400, "layer must be an integer"),
    ("GET", "/api/images?label=10", None, 400, "label must be in [0, 10)"),
    ("GET", "/api/images?colour=red", None, 400, "unknown parameters ['colour']"),
    ("GET", "/api/images?count=0", None, 400, "count must be in"),
    ("GET", "/api/images?start=1000000", None, 400, "start must be in"),
]


@pytest.mark.parametrize("method,path,body,status,message", BAD, ids=[f"{b[0]} {b[1]} {str(b[2])[:30]}" for b in BAD])
def test_bad_requests_get_a_json_error(url, method, path, body, status, message):
    if method == "GET":
        got, reply = call(url, path)
    else:
        got, reply = call(url, path, raw=body) if isinstance(body, bytes) else call(url, path, body)
    assert (got, reply["status"]) == (status, status), reply
    assert message in reply["error"]
    assert "Traceback" not in reply["error"]


def test_bad_bodies_and_request_lines(url):
    head = "POST /api/forward HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    cases = [
        (f"{head}Content-Type: application/json\r\n\r\n", 411, "Content-Length"),
        (f"{head}Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n", 413, "at most 1048576"),
        (f"{head}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}", 415, "application/json"),
        ("PUT / HTTP/1.1\r\nHost: localhost\r\n\r\n", 501, "Unsupported method"),
        ("GET /api/model HTTP/1.1\r\nHost: evil.example:80\r\n\r\n", 403, "not 'evil.example:80'"),
        (f"{head.replace('127.0.0.1', 'rebound.example')}Content-Length: 2\r\n\r\n{{}}", 403, "only requests for"),
        ("GARBAGE\r\n\r\n", 400, "Bad request"),
    ]
    for text, status, message in cases:
        got, reply = raw_request(url, text.encode())
        assert got == status and message in reply["error"], (text, reply)


def test_without_data_the_test_images_are_refused(run):
    model, extra = load_any(KERAS_STACK)
    with serving(Explorer(model, extra)) as base:
        assert call(base, "/api/forward", {"index": 0}) == (
            404,
            {"error": "no test images: start the explorer with --data-dir", "status": 404},
        )
        assert call(base, "/api/images")[0] == 404
        status, info = call(base, "/api/model")
        assert "no normalisation statistics" in info["normalisation"]["note"] and info["test_images"] == 0
        status, run_info = call(base, "/api/run")
        assert status == 200 and run_info["confusion"] is None and run_info["history"] is None


# -- concurrency ------------------------------------------------------------------------------------
def test_a_burst_of_concurrent_requests_gets_each_its_own_reply(url):
    """Three bursts of 48 requests from 12 threads; each reply must be the one a lone request gets.
    (Without the explorer's lock about one reply in 25 comes back mixed or failed: layers reuse work arrays.)"""
    requests = [("/api/forward", {"index": i % 40}) for i in range(32)] + [
        ("/api/conv", {"image": {"index": i}, "layer": 3, "channel": i % 6, "row": i % 16, "col": (3 * i) % 16})
        for i in range(16)
    ]
    alone = [call(url, path, body)[1] for path, body in requests]
    with ThreadPoolExecutor(max_workers=12) as pool:
        together = list(pool.map(lambda r: call(url, *r), requests * 3))
    for (path, body), expected, (status, got) in zip(requests * 3, alone * 3, together):
        assert status == 200
        if path == "/api/forward":
            assert got["index"] == body["index"]
            np.testing.assert_allclose(got["probs"], expected["probs"], rtol=1e-6)
            assert [l["data"] for l in got["layers"][:2]] == [l["data"] for l in expected["layers"][:2]]
        else:
            assert (got["channel"], got["row"], got["col"]) == (body["channel"], body["row"], body["col"])
            assert got["output"] == pytest.approx(expected["output"], rel=1e-6)
            assert got["sum"] == pytest.approx(got["output"], rel=1e-5, abs=1e-5)


# -- the command ---------------------------------------------------------------------------------------
def start_command(*args):
    proc = subprocess.Popen(
        [sys.executable, "-m", "minicnn.explore", *map(str, args), "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=signals_at_default,  # Ctrl-C reaches it even when the tests run in the background
    )
    for line in proc.stdout:
        if line.startswith("open http://"):
            return proc, line.split()[1].rstrip("/")
    proc.wait(timeout=30)
    raise AssertionError(f"the command did not start: {proc.stderr.read()}")


@pytest.mark.parametrize("which", ["checkpoint", "keras"])
def test_the_command_serves_and_stops_on_ctrl_c(run, which):
    path, data_dir, _ = run
    args = [path, "--data-dir", data_dir] if which == "checkpoint" else [KERAS_STACK]
    proc, base = start_command(*args)
    try:
        status, info = call(base, "/api/model")
        assert status == 200 and info["test_images"] == (40 if which == "checkpoint" else 0)
        assert call(base, "/api/forward", {"index": 0} if which == "checkpoint" else {"synthetic": True})[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out, err


def test_the_command_refuses_a_bad_model_file(tmp_path):
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"not a checkpoint")
    result = subprocess.run(
        [sys.executable, "-m", "minicnn.explore", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "minicnn.explore", str(tmp_path / "none.keras")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "error:" in missing.stderr and "Traceback" not in missing.stderr


def test_exposure_warning():
    assert exposure_warning("127.0.0.1") is None and exposure_warning("localhost") is None
    assert "anyone who can reach" in exposure_warning("0.0.0.0")


def test_package_data_covers_every_page_file():
    """pyproject's package-data globs must match each file in static/ (else a wheel ships without it)."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    root = Path(__file__).resolve().parent.parent
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = setuptools["package-data"]["minicnn.explore"]
    files = sorted(p.name for p in (root / "minicnn/explore/static").iterdir())
    assert files == ["app.js", "index.html", "style.css"]
    assert all(any(fnmatch.fnmatch(f"static/{name}", g) for g in globs) for name in files)


def _can_build_offline():
    import importlib.util

    import setuptools

    major, minor = (int(v) for v in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _can_build_offline(), reason="building a wheel offline needs setuptools>=70.1 or wheel here")
def test_a_wheel_ships_the_page(tmp_path):
    """A non-editable install must carry static/ (package data), not only the Python files."""
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("minicnn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"minicnn/explore/static/{n}" for n in ("index.html", "app.js", "style.css")} <= names
