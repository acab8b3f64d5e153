"""The house rules, checked on the source: layers point down, one module imports CuPy,
the picture maths needs no matplotlib."""

import ast
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
    "checkpoint.py",
    "input_checks.py",
    "gradcheck.py",
    *[f"callbacks/{p.name}" for p in (PACKAGE / "callbacks").glob("*.py")],
    "model_files.py",
    "keras_style.py",
    "schedules.py",
    "distributed.py",
    "interpret.py",
    "interrupts.py",
    "outputs.py",
    "parallel.py",
    "blas.py",
    "seeds.py",
    "inference.py",
    "gpu_transports.py",
    *[f"layers/{p.name}" for p in (PACKAGE / "layers").glob("*.py")],
    *[f"kernels/{p.name}" for p in (PACKAGE / "kernels").glob("*.py")],
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


def test_the_main_jobs_room_stays_out_of_the_library():
    """``minicnn.run`` (the command line of ``examples/train_cifar.py``: options, resume, safety,
    report) sits above everything: no other module imports it, and ``import minicnn`` does not load it."""
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "run":
            continue
        for module, level in imports(path):
            named = module.split(".")[0] == "run" and level or module.startswith("minicnn.run")
            assert not named, f"{path.relative_to(PACKAGE)} imports minicnn.run"
    code = "import sys, minicnn; assert 'minicnn.run' not in sys.modules, 'minicnn.run imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_kernels_are_functions_on_arrays_that_import_no_layer():
    """A kernel takes arrays and returns arrays: minicnn.kernels imports the backend, BLAS and
    its own modules (and NumPy), never minicnn.layers or anything above them."""
    allowed = {"backend", "blas", "kernels"}
    for path in (PACKAGE / "kernels").glob("*.py"):
        for module, level in imports(path):
            top = module.split(".")[0]
            if level == 1:  # from .conv import ...; from . import conv
                continue
            if level == 2:  # from ..backend import ...
                assert top in allowed, f"kernels/{path.name} imports ..{module}"
            else:
                inside = top == "minicnn" and module.split(".")[1:2] and module.split(".")[1] in allowed
                external = top in ("__future__", "numpy", "contextlib", "collections", "typing")
                assert inside or external, f"kernels/{path.name} imports {module}"
