"""Links resolve as a browser resolves them: the WHATWG URL Standard's own tests.

``tests/data/wpt_url_http.json`` holds the cases of web-platform-tests' urltestdata.json
that a crawler meets following a link (an http(s) base, and an http(s) result or a failure;
the file says where it comes from). For each, the request ``response.follow(input)`` makes
on a page at ``base`` goes through a real frontier: what the crawl would fetch must be the
standard's URL (without its fragment), and an input the standard refuses must be filtered
as ``bad_url``, never fetched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawler import Request, Response, Settings
from crawler._frontier import Frontier
from crawler._stats import StatsCollector

CASES = json.loads((Path(__file__).parent / "data" / "wpt_url_http.json").read_text(encoding="utf-8"))[1:]


def _fetched(base: str, href: str) -> str | None:
    """The URL the crawl would fetch for ``response.follow(href)`` on a page at ``base``, or
    None when the frontier filters it as bad_url."""
    stats = StatsCollector()
    frontier = Frontier(Settings(obey_robots=False, rate_limit=None), stats, clock=lambda: 0.0)
    response = Response(base, 200, {"Content-Type": "text/html"}, b"<html></html>", Request(base))
    request = response.follow(href)
    request.depth = 1  # a followed link, as the engine marks it
    reason = frontier.add(request)
    if reason is not None:
        assert reason == "bad_url", reason
        assert stats.filtered_by == {"bad_url": 1}
        return None
    return request.url


@pytest.mark.parametrize("case", CASES, ids=[f"{c['base']} + {c['input']!r}" for c in CASES])
def test_follow_fetches_the_url_the_standard_gives(case):
    expected = None if case.get("failure") else case["href"].partition("#")[0]
    assert _fetched(case["base"], case["input"]) == expected


def test_the_suite_is_the_one_the_issue_measured():
    assert len(CASES) == 166
    assert sum(1 for case in CASES if case.get("failure")) == 52
