"""docs/apipages.py: every class is documented once, where it is defined, and each ``minicnn.``
name docs/API.md writes exists (the strict docs build checks the same; this runs without Sphinx)."""

import importlib
import importlib.util
import re
from pathlib import Path

import minicnn

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("apipages", ROOT / "docs" / "apipages.py")
apipages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(apipages)


def test_a_re_exported_class_is_documented_where_it_is_defined():
    layers = importlib.import_module("minicnn.layers")
    assert apipages.canonical_path(apipages.locate("minicnn.layers.Conv2D")) == "minicnn.layers.conv.Conv2D"
    assert "Conv2D" not in apipages.own_classes(layers)
    assert ("Conv2D", "minicnn.layers.conv.Conv2D") in apipages.reexports(layers)
    # Keras's other name for MaxPool2D links to the alias, which stays on its module's page
    assert ("MaxPooling2D", "minicnn.layers.pool.MaxPooling2D") in apipages.reexports(layers)
    assert apipages.own_classes(importlib.import_module("minicnn.layers.pool")) == ["MaxPool2D"]
    assert apipages.locate("minicnn.Model") is None  # a Keras name minicnn refuses is not an object


def test_every_class_has_one_page_and_no_module_page_repeats_it(tmp_path):
    apipages.write_pages(minicnn, tmp_path)
    classes = sorted((tmp_path / "classes").iterdir())
    names = [page.stem.split("_", 1)[1] for page in classes]
    assert len(names) == len(set(names)) and "minicnn.layers.conv.Conv2D" in names
    assert sum(".. autoclass:: Conv2D\n" in page.read_text() for page in classes) == 1
    for page in tmp_path.glob("*.rst"):
        assert ".. autoclass::" not in page.read_text(), page.name
    layers_page = next(tmp_path.glob("*_minicnn.layers.rst")).read_text()
    assert "exclude-members:" in layers_page and "Conv2D" in layers_page.split("exclude-members:")[1]


def test_the_minicnn_names_in_api_md_exist():
    text = (ROOT / "docs" / "API.md").read_text()
    names = {m.group(1) for m in re.finditer(r"`(minicnn(?:\.\w+)+)(?:\([^`]*\))?`", text)}
    names = {name for name in names if not apipages.FILE_NAME.search(name)}
    assert len(names) > 30
    assert [name for name in sorted(names) if apipages.locate(name) is None] == []
