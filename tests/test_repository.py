"""The repository holds sources only: nothing that .gitignore lists is tracked."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_tracked_file_is_ignored():
    # Building (pip install .) writes crawler.egg-info/; if git tracked it, every build
    # would dirty the checkout.
    git = shutil.which("git")
    assert git, "git is needed to check the repository"
    result = subprocess.run(
        [git, "ls-files", "--cached", "--ignored", "--exclude-standard"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    assert result.stdout == "", f"tracked files that .gitignore lists:\n{result.stdout}"
