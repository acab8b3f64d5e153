"""The README's example runs and says what it claims."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"validation accuracy: ([0-9.]+)", result.stdout).group(1))
    assert accuracy > 0.9
    errors = eval(result.stdout.strip().splitlines()[-1], {"np": __import__("numpy")})
    assert max(errors.values()) < 1e-7


def test_readme_commands_match_ci():
    text = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"Run the test suite:\n\n    (.+)\n", text).group(1)
    install, test = command.split(" && ")
    assert install.startswith("pip install -e") and test.startswith("python -m pytest")
    assert install in ci and test in ci.splitlines()  # CI runs exactly the README's command
