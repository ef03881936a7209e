"""The README's examples run as shown: what a new user copies must work first time."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end >= 0 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def test_the_callback_unit_test_runs_as_shown(tmp_path):
    spider = next(b for b in blocks(section("Writing a spider"), "python") if b.startswith("# quotes.py"))
    testing = section("Unit-testing a callback")
    (config,) = blocks(testing, "toml")
    (test,) = blocks(testing, "python")
    (tmp_path / "quotes.py").write_text(spider, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(config, encoding="utf-8")
    (tmp_path / "test_quotes.py").write_text(test, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_quotes.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_logging_recipe_runs_as_shown(tmp_path):
    recipe = next(b for b in blocks(section("Embedding"), "python") if "log_formatter" in b)
    script = recipe + "\nimport logging\nlogging.getLogger('crawler').warning('hello', extra={'url': 'http://x/'})\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "hello" in result.stderr and "url=http://x/" in result.stderr
