"""The house rules, checked on the source (as tinygrad checks its own).

The rooms: the book loads on its own within a line budget and imports no tool; the tools open it
only through the listed doors; kernels know no layer; no import cycle anywhere; the names of 0.2
still work. The book is what a learner reads to follow one training step: backend, layers, losses,
sequential, optimizers, training. ``import minicnn.training`` loads it, the fast kernels and the
BLAS binding its layers return into, and nothing else.

And the older rules: layers point down, one module imports CuPy, the picture maths needs no
matplotlib, modules of about a screenful or three.
"""

import ast
import fnmatch
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minicnn"
# The core: what training a model needs. Datasets, pictures and the package root sit above it.
CORE = [
    "backend.py",
    "losses.py",
    "optim.py",
    "optim_base.py",
    "optimizers.py",
    "training.py",
    "sequential.py",
    "models.py",
    "input_checks.py",
    "gradcheck.py",
    "keras_style.py",
    "interpret.py",
    "blas.py",
    "seeds.py",
    "inference.py",
    "averaging.py",
    *[
        str(p.relative_to(PACKAGE))
        for room in ("layers", "kernels", "distributed")
        for p in (PACKAGE / room).glob("*.py")
    ],
    *[f"run/{name}.py" for name in ("checkpoint", "outputs", "interrupts", "schedules", "memory", "tta")],
    *[f"run/callbacks/{p.name}" for p in (PACKAGE / "run" / "callbacks").glob("*.py")],
    "interop/model_files.py",
]


def imports(path: Path):
    """(module, level) for every import statement in ``path``: ``from ..x import y`` -> ("x", 2)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.module is None:  # from . import x
                yield from ((alias.name, node.level) for alias in node.names)
            else:
                yield node.module, node.level


def test_core_imports_neither_datasets_nor_the_package_root():
    for name in CORE:
        path = PACKAGE / name
        if not path.exists():
            continue
        depth = name.count("/") + 1  # the level at which "." is the package root
        for module, level in imports(path):
            assert not (level and module.split(".")[0] == "datasets"), f"{name} imports datasets"
            assert not module.startswith("minicnn.datasets"), f"{name} imports minicnn.datasets"
            root = level == depth and module in ("", "__version__")
            assert not root and module != "minicnn", f"{name} imports the package root"


def test_only_backend_imports_cupy():
    for path in PACKAGE.rglob("*.py"):
        for module, _ in imports(path):
            if module.split(".")[0] == "cupy":
                assert path.name == "backend.py", f"{path.relative_to(PACKAGE)} imports {module}"


def test_picture_maths_and_core_import_without_matplotlib():
    code = (
        "import sys, minicnn, minicnn.interpret, minicnn.training, minicnn.datasets; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; "
        "assert 'minicnn.datasets.cifar10' in sys.modules"
    )  # the package itself still offers datasets
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_attributes_give_their_own_module():
    code = (
        "import sys, minicnn; m = minicnn.interpret; "
        "assert m.__name__ == 'minicnn.interpret', m.__name__; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; "
        "assert minicnn.viz.__name__ == 'minicnn.viz'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_viz_draws_and_interpret_computes():
    import minicnn.interpret
    import minicnn.viz

    assert not set(minicnn.viz.__all__) & set(dir(minicnn.interpret)) - {"annotations"}
    assert minicnn.viz.max_stimuli is minicnn.interpret.max_stimuli  # the old, documented name still works


def test_every_module_is_about_one_screenful_or_three():
    long = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 340
    }
    assert not long, f"modules over ~300 lines: {long}"


def test_the_explorer_stays_out_of_import_minicnn():
    """``minicnn.explore`` (an HTTP server and a page) is never imported by the library itself,
    and needs neither matplotlib nor anything beyond the standard library and NumPy."""
    for path in PACKAGE.rglob("*.py"):
        if "explore" in path.relative_to(PACKAGE).parts:
            continue
        for module, level in imports(path):
            named = module.split(".")[0] == "explore" and level or module.startswith("minicnn.explore")
            assert not named, f"{path.relative_to(PACKAGE)} imports the explorer"
    code = (
        "import sys, minicnn; "
        "assert 'minicnn.explore' not in sys.modules and 'http.server' not in sys.modules, 'explorer imported'; "
        "import minicnn.explore; assert 'matplotlib' not in sys.modules, 'the explorer imported matplotlib'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the rooms ----------------------------------------------------------------------------------
BOOK = [
    "minicnn",
    "minicnn._moved",
    "minicnn._version",
    "minicnn.backend",
    "minicnn.layers",
    "minicnn.layers.*",
    "minicnn.losses",
    "minicnn.sequential",
    "minicnn.optim",
    "minicnn.optim_base",
    "minicnn.averaging",
    "minicnn.training",
    "minicnn.inference",
    "minicnn.input_checks",
    "minicnn.seeds",
]
FAST_PATHS = ["minicnn.kernels", "minicnn.kernels.*", "minicnn.blas"]  # what a layer's early return calls
BOOK_BUDGET = 3_100  # non-blank lines of the book's modules (fast paths apart): "about 3,000"

# The only places where the book reaches a tool: inside a function, on first use. {book module: tools}
DOORS = {
    "minicnn": {"minicnn._moved"},  # (module __getattr__: every lazy name of the package)
    "minicnn.training": {"minicnn.distributed.threads", "minicnn.run.callbacks.base"},
    "minicnn.inference": {"minicnn.distributed.threads", "minicnn.run.tta"},
    "minicnn.sequential": {"minicnn.interop.model_files", "minicnn.run.callbacks", "minicnn.keras_style"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _import_nodes(nodes, in_function=False):
    """(import node, inside a function?) for every import under ``nodes``."""
    for node in nodes:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue  # names for the type checker only: never imported when the program runs
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for field in ("body", "orelse", "finalbody", "handlers"):
            if isinstance(getattr(node, field, None), list):
                yield from _import_nodes(getattr(node, field), inner)


def imported_modules(name: str, deferred: bool) -> set[str]:
    """The minicnn modules ``name`` imports at module level (``deferred=False``) or inside functions."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node, in_function in _import_nodes(ast.parse(path.read_text()).body):
        if in_function != deferred:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
            continue
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        module = ".".join(base + ([node.module] if node.module else []))
        for alias in node.names:  # `from . import x` names a module when there is one
            found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module)
    return {m for m in found if m in MODULES and m != name}


def module_graph(deferred: bool) -> dict[str, set[str]]:
    """Every module's imports: module level only, or with those inside functions too."""
    return {
        name: imported_modules(name, False) | (imported_modules(name, True) if deferred else set()) for name in MODULES
    }


def matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def non_blank_lines(name: str) -> int:
    return sum(1 for line in MODULES[name].read_text().splitlines() if line.strip())


def test_the_book_loads_alone_within_its_budget():
    code = "import json, sys, minicnn.training; print(json.dumps([m for m in sys.modules if m.startswith('minicnn')]))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    strangers = [m for m in loaded if not matches(m, BOOK + FAST_PATHS)]
    assert not strangers, f"import minicnn.training loads tools: {strangers}"
    book = sum(non_blank_lines(m) for m in loaded if matches(m, BOOK))
    fast = sum(non_blank_lines(m) for m in loaded if matches(m, FAST_PATHS))
    print(f"the book: {book} non-blank lines; its fast paths: {fast}")
    assert book <= BOOK_BUDGET, f"the book has grown to {book} non-blank lines (budget {BOOK_BUDGET})"


def test_the_book_imports_no_tool_at_module_level():
    for name, targets in module_graph(deferred=False).items():
        if matches(name, BOOK):
            tools = sorted(t for t in targets if not matches(t, BOOK + FAST_PATHS))
            assert not tools, f"{name} imports {tools} at module level"


def test_the_book_reaches_tools_only_through_its_doors():
    for name in MODULES:
        if matches(name, BOOK):
            tools = {t for t in imported_modules(name, deferred=True) if not matches(t, BOOK + FAST_PATHS)}
            assert tools <= DOORS.get(name, set()), f"{name} opens an unlisted door to {sorted(tools)}"


def test_kernels_import_only_the_backend_and_blas():
    for name in MODULES:
        if matches(name, ["minicnn.kernels", "minicnn.kernels.*"]):
            targets = imported_modules(name, False) | imported_modules(name, True)
            others = sorted(t for t in targets if not matches(t, ["minicnn.backend", *FAST_PATHS]))
            assert not others, f"{name} imports {others}: a kernel is a function on arrays, it knows no layer"


def test_no_import_cycle_anywhere():
    graph = module_graph(deferred=True)
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name, path):
        state[name] = 1
        for target in sorted(graph[name]):
            assert state.get(target) != 1, "import cycle: " + " -> ".join(path[path.index(target) :] + [target])
            if target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_import_minicnn_loads_no_tool():
    code = (
        "import sys, minicnn; heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('mpi4py', 'matplotlib', 'h5py', 'onnx', 'tqdm') or m.startswith(('minicnn.datasets', 'minicnn.run', "
        "'minicnn.distributed', 'minicnn.interop', 'minicnn.viz', 'minicnn.explore'))]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_names_of_0_2_give_the_modules_of_0_3():
    from minicnn._moved import MOVED

    names = sorted(MOVED)
    pairs = sorted(MOVED.items())
    same_module = "[i.import_module(a) is i.import_module(b) for a, b in PAIRS]"
    code = f"import importlib as i, json; PAIRS = {pairs}; print(json.dumps({same_module}))"
    same = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert all(same), [n for n, s in zip(names, same) if not s]
    for old in names:  # and nothing is left at the old place to be imported twice
        assert old not in MODULES, f"{old} exists both as a file and as an old name"


def test_the_main_jobs_command_line_stays_out_of_the_library():
    """The command line of ``examples/train_cifar.py`` (``minicnn.run``'s options, resume, safety,
    inputs, report) sits above everything: no module outside them imports one, and ``import minicnn``
    loads no part of ``minicnn.run``."""
    command_line = {f"minicnn.run.{name}" for name in ("options", "resume", "safety", "inputs", "report", "explore")}
    for name, targets in module_graph(deferred=True).items():
        if name not in command_line | {"minicnn.run"}:
            assert not set(targets) & command_line, f"{name} imports {sorted(set(targets) & command_line)}"
    code = "import sys, minicnn; assert 'minicnn.run' not in sys.modules, 'minicnn.run imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
