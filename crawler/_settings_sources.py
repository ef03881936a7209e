"""Settings from a project file and the environment, for the command line.

The command line layers, lowest first: the defaults < ``crawler.toml`` (or the
``[tool.crawler]`` table of a ``pyproject.toml``), the first found from the working directory
up < ``CRAWLER_<NAME>`` environment variables < the spider's own ``settings`` < ``-s``.
The file and the environment hold what belongs to a machine or a project (a user agent with
a contact, a proxy, limits for your own servers); the spider's code and the command line
win over them. An embedded ``Crawler`` reads neither: a library does not look at files or
the environment behind its caller's back.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._exceptions import SettingsError
from ._settings import Settings

__all__ = ["environment_settings", "project_settings"]

ENV_PREFIX = "CRAWLER_"


def project_settings(start: Path | None = None) -> tuple[dict[str, Any], Path | None]:
    """The settings in the nearest ``crawler.toml``, or ``pyproject.toml`` with a
    ``[tool.crawler]`` table, from ``start`` (the working directory) up; and that file."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "crawler.toml"
        if candidate.is_file():
            return _checked(_load(candidate), candidate), candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _load(pyproject).get("tool", {}).get("crawler")
            if isinstance(table, Mapping):
                return _checked(dict(table), pyproject), pyproject
    return {}, None


def environment_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``CRAWLER_<NAME>=value`` for each setting (``CRAWLER_RATE_LIMIT=0.5``); values are
    JSON where they parse, else text, as ``-s`` takes them. Other ``CRAWLER_`` variables are
    not settings and are left alone."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for name in Settings.names():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        try:
            found[name] = json.loads(raw)
        except ValueError:
            found[name] = raw
    try:
        Settings().merge(found)
    except SettingsError as exc:
        variable = ENV_PREFIX + exc.name.upper()
        raise SettingsError(exc.name, f"{_detail(exc)} (from {variable} in the environment)") from None
    return found


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(str(path), f"cannot read {path}: {exc}") from None


def _checked(values: dict[str, Any], path: Path) -> dict[str, Any]:
    """The file's settings, refused whole (naming the file) if one is unknown or bad."""
    try:
        Settings().merge(values)
    except SettingsError as exc:
        raise SettingsError(exc.name, f"{_detail(exc)} (in {path})") from None
    return values


def _detail(exc: SettingsError) -> str:
    """The message without its "setting 'name': " prefix (the new error adds it again)."""
    return str(exc).split(": ", 1)[-1]
