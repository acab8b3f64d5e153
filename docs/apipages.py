"""The API reference's pages, written at build time: one page per module, one page per class.

Each object is documented once, where it is defined (``minicnn.layers.conv.Conv2D``). A package
that re-exports it (``minicnn.layers.Conv2D``) lists it with a link instead of documenting it again,
and :func:`resolve_reexport` lets any cross-reference name the short import path.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shutil
from pathlib import Path
from types import ModuleType

# The modules a training step runs through come first, in the order the code is best read.
READING_ORDER = [  # the book (what `import minicnn.training` loads), then its fast paths
    "minicnn.backend",
    "minicnn.layers",
    "minicnn.losses",
    "minicnn.sequential",
    "minicnn.optim",
    "minicnn.optim_base",
    "minicnn.averaging",
    "minicnn.training",
    "minicnn.inference",
    "minicnn.input_checks",
    "minicnn.seeds",
    "minicnn.kernels",
    "minicnn.blas",
]


def module_names(package: ModuleType) -> list[str]:
    names = sorted(m.name for m in pkgutil.walk_packages(package.__path__, "minicnn.") if "._" not in m.name)
    rank = {name: i for i, name in enumerate(READING_ORDER)} | {"minicnn": -1}

    def key(name: str) -> tuple[int, str]:
        top = ".".join(name.split(".")[:2])
        return (rank.get(top, len(rank)), name)

    return sorted(["minicnn"] + names, key=key)


def own_classes(module: ModuleType) -> list[str]:
    """The public classes a module defines (as autodoc would document them), in source order."""
    listed = getattr(module, "__all__", None)
    return [
        name
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and obj.__module__ == module.__name__
        and name == obj.__name__  # an alias (MaxPooling2D = MaxPool2D) stays on the module's page
        and not name.startswith("_")
        and (listed is None or name in listed)
        and obj.__dict__.get("__doc__")
    ]


def reexports(module: ModuleType) -> list[tuple[str, str]]:
    """``(name, canonical path)`` for what ``__all__`` names but another module defines."""
    found = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name, None)
        path = canonical_path(obj)
        if path and name != path.rsplit(".", 1)[1] and locate(alias := f"{path.rsplit('.', 1)[0]}.{name}") is obj:
            path = alias  # another name for it (Keras's MaxPooling2D): documented where that name is defined
        if path and path != f"{module.__name__}.{name}":
            found.append((name, path))
    return found


def canonical_path(obj: object) -> str | None:
    """Where an object is defined and documented: ``module.qualname`` (a module: its own name)."""
    if isinstance(obj, ModuleType):
        return obj.__name__
    obj = getattr(obj, "fget", obj)  # a property: its getter knows where it lives
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not (isinstance(module, str) and isinstance(qualname, str)) or not module.startswith("minicnn"):
        return None
    return f"{module}.{qualname}"


def locate(path: str) -> object | None:
    """The object a dotted path names: the longest importable module, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            try:
                obj = getattr(obj, attr)
            except Exception:  # AttributeError, or a Keras name minicnn refuses with its own error
                return None
        return obj
    return None


def heading(text: str, mark: str = "=") -> str:
    return f"{text}\n{mark * len(text)}\n"


def module_page(module: ModuleType, classes: list[str], index: int) -> str:
    name = module.__name__
    skip = classes + [n for n, _ in reexports(module)]
    body = [heading(f"``{name}``"), f".. automodule:: {name}"]
    if skip:
        body.append(f"   :exclude-members: {', '.join(skip)}")
    # Autosummary wants full names outside the module's own context.
    body += ["", ".. currentmodule:: None", ""]
    if classes:
        body += [heading("Classes", "-"), ".. autosummary::", "   :nosignatures:", ""]
        body += [f"   ~{name}.{c}" for c in classes]
        body += ["", ".. toctree::", "   :hidden:", ""]
        body += [f"   classes/{index:03d}_{name}.{c}" for c in classes]
        body.append("")
    if reexports(module):
        body += [
            heading("Importable from here", "-"),
            f"Each is documented once, where it is defined; ``from {name} import ...`` finds it too.",
            "",
            ".. autosummary::",
            "   :nosignatures:",
            "",
        ]
        body += [f"   ~{path}" for _, path in reexports(module)]
        body.append("")
    return "\n".join(body)


def class_page(module: ModuleType, cls: str, aliases: list[str]) -> str:
    name = module.__name__
    body = [heading(f"``{cls}``"), f".. currentmodule:: {name}", ""]
    if aliases:
        imports = " or ".join(f"``from {a} import {cls}``" for a in aliases)
        body += [f"Defined in :mod:`{name}`; import it as {imports}.", ""]
    body += [f".. autoclass:: {cls}", ""]
    return "\n".join(body)


def write_pages(package: ModuleType, out: Path) -> None:
    """Write ``out/NNN_module.rst`` (module pages, in reading order) and ``out/classes/*.rst``."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "classes").mkdir(parents=True)
    names = module_names(package)
    modules = [importlib.import_module(n) for n in names]
    aliases: dict[str, list[str]] = {}  # canonical path -> the packages that re-export it
    for module in modules:
        for _, path in reexports(module):
            aliases.setdefault(path, []).append(module.__name__)
    for i, module in enumerate(modules):
        classes = own_classes(module)
        (out / f"{i:03d}_{module.__name__}.rst").write_text(module_page(module, classes, i))
        for cls in classes:
            page = class_page(module, cls, aliases.get(f"{module.__name__}.{cls}", []))
            (out / "classes" / f"{i:03d}_{module.__name__}.{cls}.rst").write_text(page)


def resolve_reexport(app, env, node, contnode):
    """A ``py`` cross-reference to a re-exported name (``minicnn.layers.Conv2D``) goes to the one
    page where it is documented; one to a ``minicnn`` name found nowhere fails the strict build."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    context = [node.get("py:module"), node.get("py:class")]
    prefixes = [""] + [f"{p}." for p in (context[0], ".".join(filter(None, context))) if p]
    domain = env.get_domain("py")
    for prefix in prefixes:
        path = canonical_path(locate(prefix + target)) if (prefix + target).startswith("minicnn") else None
        if path is None:
            continue
        for role in (node["reftype"], "obj"):
            found = domain.resolve_xref(env, node["refdoc"], app.builder, role, path, node, contnode)
            if found is not None:
                return found
    if target.startswith("minicnn") and not node.get("minicnn_optional"):
        from sphinx.util import logging

        logging.getLogger(__name__).warning("reference to %s: no page documents it", target, location=node)
    return None


# The pages whose code literals become links: `Conv2D` in "Layers — `minicnn.layers`" is minicnn.layers.Conv2D.
LINKED_PAGES = {"API"}
FILE_NAME = re.compile(r"\.(js|json|html|css|png|py|npz|csv|h5|keras|onnx|md|txt)$")  # minicnn.js: a file
NAME = re.compile(r"([A-Za-z_]\w*(?:\.\w+)*)(?:\(.*\))?")


def section_modules(node) -> list[str]:
    """The ``minicnn...`` names in the titles of the sections around ``node``, innermost first."""
    from docutils import nodes

    found = []
    while node is not None:
        if isinstance(node, nodes.section) and isinstance(node[0], nodes.title):
            found += [lit.astext() for lit in node[0].findall(nodes.literal) if lit.astext().startswith("minicnn.")]
        node = node.parent
    return found


def link_names(app, doctree) -> None:
    """Each code literal of a linked page that names a minicnn object (``minicnn.set_backend(name)``,
    ``fit(...)`` under "Model — ``minicnn.Sequential``") links to its reference page. A dotted
    ``minicnn.`` name that does not exist fails the strict build: the contract names real things."""
    from docutils import nodes
    from sphinx import addnodes
    from sphinx.util import logging

    if app.env.docname not in LINKED_PAGES:
        return
    for literal in list(doctree.findall(nodes.literal)):
        match = NAME.fullmatch(literal.astext())
        if not match or isinstance(literal.parent, (nodes.title, nodes.reference, addnodes.pending_xref)):
            continue
        name = match.group(1)
        if name.startswith("minicnn"):
            candidates = [name]
        else:
            candidates = [f"{m}.{name}" for m in section_modules(literal)] + [f"minicnn.{name}"]
        if "." not in name and not name.startswith("minicnn"):  # a bare word links only to a class or function
            candidates = [c for c in candidates if inspect.isclass(locate(c)) or inspect.isroutine(locate(c))]
        paths = [canonical_path(locate(c)) for c in candidates]
        path = next((p for p in paths if p), None)
        if path is None:
            if name.startswith("minicnn.") and not FILE_NAME.search(name) and locate(name) is None:
                logging.getLogger(__name__).warning(
                    "%s names %s: no such object", app.env.docname, name, location=literal
                )
            continue
        ref = addnodes.pending_xref(
            "", refdomain="py", reftype="obj", reftarget=path, refexplicit=True, refdoc=app.env.docname
        )
        ref["minicnn_optional"] = True  # an undocumented object keeps its plain code font
        literal.replace_self(ref)
        ref += literal
