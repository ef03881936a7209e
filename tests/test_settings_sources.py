"""Settings from a project file (crawler.toml, [tool.crawler] in pyproject.toml) and CRAWLER_*
variables, layered under the spider's settings and -s on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import read_jsonl, write_spider

from crawler import SettingsError
from crawler._settings_sources import environment_settings, project_settings


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    environ.update(env or {})
    spider = write_spider(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "crawler", "run", str(spider), "-O", str(tmp_path / "items.jsonl"), *args],
        capture_output=True, text=True, timeout=60, cwd=cwd or tmp_path, env=environ,
    )


def user_agents(tmp_path: Path) -> set[str]:
    return {item["ua"] for item in read_jsonl(tmp_path / "items.jsonl")}


def test_the_layers_in_order_file_then_environment_then_command_line(tmp_path):
    (tmp_path / "crawler.toml").write_text('user_agent = "from-file/1"\nretries = 0\n')

    assert run(tmp_path).returncode == 0
    assert user_agents(tmp_path) == {"from-file/1"}

    assert run(tmp_path, env={"CRAWLER_USER_AGENT": "from-env/1"}).returncode == 0
    assert user_agents(tmp_path) == {"from-env/1"}

    done = run(tmp_path, "-s", "user_agent=from-cli/1", env={"CRAWLER_USER_AGENT": "from-env/1"})
    assert done.returncode == 0, done.stderr
    assert user_agents(tmp_path) == {"from-cli/1"}


def test_the_spiders_own_settings_win_over_the_file(tmp_path):
    (tmp_path / "crawler.toml").write_text("rate_limit = 0.01\n")  # would take minutes for 7 pages
    done = run(tmp_path)  # the shop spider sets rate_limit = 0 itself
    assert done.returncode == 0, done.stderr
    assert len(read_jsonl(tmp_path / "items.jsonl")) == 6


def test_a_pyproject_table_is_found_from_a_subdirectory(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.crawler]\nuser_agent = "project/2"\n')
    sub = tmp_path / "spiders" / "deep"
    sub.mkdir(parents=True)
    settings, found = project_settings(sub)
    assert settings == {"user_agent": "project/2"} and found == tmp_path / "pyproject.toml"
    assert run(tmp_path, cwd=sub).returncode == 0
    assert user_agents(tmp_path) == {"project/2"}


def test_a_bad_value_in_the_file_is_a_usage_error_naming_the_file(tmp_path):
    (tmp_path / "crawler.toml").write_text("concurency = 4\n")
    done = run(tmp_path)
    assert done.returncode == 2
    assert "crawler.toml" in done.stderr and "concurency" in done.stderr


def test_environment_values_parse_as_on_the_command_line():
    found = environment_settings({"CRAWLER_RATE_LIMIT": "0.5", "CRAWLER_OBEY_ROBOTS": "false", "CRAWLER_HOME": "/x"})
    assert found == {"rate_limit": 0.5, "obey_robots": False}  # CRAWLER_HOME is no setting: left alone
    with pytest.raises(SettingsError, match="CRAWLER_CONCURRENCY"):
        environment_settings({"CRAWLER_CONCURRENCY": "many"})
