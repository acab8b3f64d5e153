"""Sphinx configuration: the Markdown pages of docs/ (myst-parser), the tutorial notebook run at build time
(myst-nb), and the API reference from the docstrings (autodoc + napoleon; one page per module and per class,
written by apipages.py), in the PyData theme."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import sphinx.util.inspect

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))  # apipages, beside this file

import apipages  # noqa: E402

import minicnn  # noqa: E402

project = "minicnn"
author = "The minicnn developers"
copyright = "2026, the minicnn developers"
release = minicnn.__version__
version = release

extensions = [
    "myst_nb",  # Markdown pages (it includes myst-parser) and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",  # the tables of classes on each module page
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the site itself: the docs render maths offline
    "sphinx.ext.viewcode",
]

# Pages that live outside docs/ in the repository are copied in at build time (never edited here).
GENERATED = HERE / "_generated"
GENERATED.mkdir(exist_ok=True)
shutil.copyfile(ROOT / "examples" / "tutorial.ipynb", GENERATED / "tutorial.ipynb")

# One API page per module and one per class, found by walking the package (docs/apipages.py), so
# that a new module is documented without editing this file; each class is documented once.
apipages.write_pages(minicnn, GENERATED / "api")

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nb_execution_mode = "force"  # the tutorial is run at build time, so its page shows every output
nb_execution_timeout = 600
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # pages moved from the README start at level 2 in places

autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "signature"  # the types in each signature line, where a reader looks first
autodoc_typehints_format = "short"  # Iterator, not collections.abc.Iterator
# `Array = Any` (a NumPy or CuPy ndarray): its name, not "Any", in every signature ("~": the short name).
autodoc_type_aliases = {
    "Array": "~minicnn.layers.base.Array",
    "Optimizer": "~minicnn.optim_base.Optimizer",  # two classes bear the name: the base is meant
    "Sequential": "~minicnn.sequential.Sequential",
}
# Sphinx writes an alias inside `Array | None` by its repr ("TypeAliasForwardRef('...')"): its name instead.
sphinx.util.inspect.TypeAliasForwardRef.__repr__ = lambda self: self.name  # type: ignore[method-assign]
autodoc_mock_imports = ["cupy", "mpi4py", "h5py"]
napoleon_numpy_docstring = False
napoleon_google_docstring = True  # the docstrings use Args:, Returns:, Raises:
napoleon_custom_sections = [("Shapes", "params_style")]  # "x: ``(N, H, W, C)`` input" lines, one per array

html_theme = "pydata_sphinx_theme"
html_title = f"minicnn {release}"
templates_path = ["_templates"]
# Every page's sidebar shows the site's sections and the current page's place in them.
html_sidebars = {"**": ["sidebar-site-nav"]}
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}


def setup(app):
    # `minicnn.layers.Conv2D` in any page links to the one page that documents Conv2D.
    app.connect("missing-reference", apipages.resolve_reexport)
    # docs/API.md's code literals that name minicnn objects link to their reference pages.
    app.connect("doctree-read", apipages.link_names)
