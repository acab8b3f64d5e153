"""Sphinx configuration: the Markdown pages of docs/ (myst-parser), the tutorial notebook without running it
(myst-nb), and the API reference from the docstrings (autodoc + napoleon), in the PyData theme."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import minicnn  # noqa: E402

project = "minicnn"
author = "The minicnn developers"
copyright = "2026, the minicnn developers"
release = minicnn.__version__
version = release

extensions = [
    "myst_nb",  # Markdown pages (it includes myst-parser) and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the site itself: the docs render maths offline
    "sphinx.ext.viewcode",
]

# Pages that live outside docs/ in the repository are copied in at build time (never edited here).
GENERATED = HERE / "_generated"
GENERATED.mkdir(exist_ok=True)
shutil.copyfile(ROOT / "examples" / "tutorial.ipynb", GENERATED / "tutorial.ipynb")

# One API page per module of the package, found by walking it, so that a new module is documented
# without editing this file. The reading order of the code comes first; the rest follow by name.
READING_ORDER = [
    "minicnn.backend",
    "minicnn.layers",
    "minicnn.losses",
    "minicnn.sequential",
    "minicnn.optim",
    "minicnn.training",
]


def _api_pages() -> None:
    import pkgutil

    names = sorted(m.name for m in pkgutil.walk_packages(minicnn.__path__, "minicnn.") if "._" not in m.name)
    names = ["minicnn"] + names
    rank = {name: i for i, name in enumerate(READING_ORDER)} | {"minicnn": -1}

    def key(name: str) -> tuple[int, str]:
        top = ".".join(name.split(".")[:2])
        return (rank.get(top, len(rank)), name)

    api = GENERATED / "api"
    shutil.rmtree(api, ignore_errors=True)
    api.mkdir()
    for i, name in enumerate(sorted(names, key=key)):
        title = f"``{name}``"
        body = f"{title}\n{'=' * len(title)}\n\n.. automodule:: {name}\n"
        (api / f"{i:03d}_{name}.rst").write_text(body)


_api_pages()

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nb_execution_mode = "force"  # the tutorial is run at build time, so its page shows every output
nb_execution_timeout = 600
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # pages moved from the README start at level 2 in places

autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "description"
# `Array = Any` (a NumPy or CuPy ndarray): show the alias's name, not "Any", in every signature.
autodoc_type_aliases = {"Array": "minicnn.layers.base.Array"}
autodoc_mock_imports = ["cupy", "mpi4py", "h5py"]
napoleon_numpy_docstring = False
napoleon_google_docstring = True  # the docstrings use Args:, Returns:, Raises:
napoleon_custom_sections = [("Shapes", "params_style")]  # "x: ``(N, H, W, C)`` input" lines, one per array

html_theme = "pydata_sphinx_theme"
html_title = f"minicnn {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
