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
    assert 'pip install -e ".[test,distributed]" && python -m pytest' in text
    assert 'pip install -e ".[test,distributed]"' in ci and "python -m pytest" in ci
