import pytest

from crawler import Crawler, Settings, SettingsError, Spider


class Plain(Spider):
    start_urls = ["http://127.0.0.1:1/"]


def test_defaults_are_polite():
    s = Settings()
    assert s.rate_limit is not None and s.rate_limit <= 5
    assert s.domain_concurrency <= 4
    assert s.retries >= 1
    assert "crawler" in s.user_agent


def test_layers_defaults_then_spider_then_caller():
    class S(Plain):
        settings = {"concurrency": 4, "retries": 7}

    crawler = Crawler(S(), {"retries": 1})
    assert crawler.settings.concurrency == 4  # from the spider
    assert crawler.settings.retries == 1  # caller wins
    assert crawler.settings.timeout == Settings().timeout  # default


def test_settings_object_contributes_its_non_default_values():
    class S(Plain):
        settings = {"concurrency": 4}

    crawler = Crawler(S(), Settings(timeout=3))
    assert crawler.settings.concurrency == 4
    assert crawler.settings.timeout == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("concurrency", 0),
        ("concurrency", "many"),
        ("domain_concurrency", -1),
        ("rate_limit", -2),
        ("timeout", 0),
        ("max_pages", -5),
        ("handle_statuses", [99]),
        ("handle_statuses", "404"),
        ("user_agent", ""),
        ("retries", True),
    ],
)
def test_bad_values_name_the_setting(name, value):
    with pytest.raises(SettingsError, match=repr(name)):
        Settings().merge({name: value})


def test_unknown_setting_is_rejected_by_name():
    with pytest.raises(SettingsError, match="'ratelimit'"):
        Crawler(Plain(), {"ratelimit": 1})

    class Typo(Plain):
        settings = {"concurency": 2}

    with pytest.raises(SettingsError, match="'concurency'"):
        Crawler(Typo())


def test_zero_means_no_limit():
    s = Settings().merge({"rate_limit": 0, "max_pages": 0, "max_depth": 0})
    assert s.rate_limit is None and s.max_pages is None and s.max_depth is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rate_limit=0", ("rate_limit", 0)),
        ("rate_limit=2.5", ("rate_limit", 2.5)),
        ("handle_statuses=[404, 410]", ("handle_statuses", [404, 410])),
        ("user_agent=mybot/1.0", ("user_agent", "mybot/1.0")),
        ("max_depth=null", ("max_depth", None)),
    ],
)
def test_cli_assignments_parse_json_else_string(text, expected):
    assert Settings.parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["rate_limit", "=3", "nope=1"])
def test_bad_cli_assignment(text):
    with pytest.raises(SettingsError):
        Settings.parse_assignment(text)


def test_statuses_normalised_and_settings_frozen():
    s = Settings(handle_statuses=[410, 404, 404])
    assert s.handle_statuses == (404, 410)
    with pytest.raises(AttributeError):
        s.concurrency = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", ["max_pages", "max_items", "max_depth"])
def test_a_negative_limit_says_zero_is_allowed(name):
    with pytest.raises(SettingsError, match=r">= 0 \(0 means no limit\), got -1"):
        Settings().merge({name: -1})
    assert getattr(Settings().merge({name: 0}), name) is None


def test_a_negative_rate_limit_says_zero_is_allowed():
    with pytest.raises(SettingsError, match=r">= 0 \(0 means no limit\)"):
        Settings().merge({"rate_limit": -2})


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("concurency", "concurrency"),
        ("RATE_LIMIT", "rate_limit"),
        ("max_page", "max_pages"),
        ("useragent", "user_agent"),
    ],
)
def test_unknown_setting_suggests_the_closest_name_first(typo, meant):
    with pytest.raises(SettingsError) as caught:
        Settings().merge({typo: 1})
    message = str(caught.value)
    assert f"did you mean {meant!r}?" in message
    assert message.index("did you mean") < message.index("known:")


@pytest.mark.parametrize(
    ("scrapy", "ours"),
    [
        ("CONCURRENT_REQUESTS", "'concurrency'"),
        ("CONCURRENT_REQUESTS_PER_DOMAIN", "'domain_concurrency'"),
        ("DOWNLOAD_DELAY", "'rate_limit'"),
        ("ROBOTSTXT_OBEY", "'obey_robots'"),
        ("DEPTH_LIMIT", "'max_depth'"),
        ("CLOSESPIDER_PAGECOUNT", "'max_pages'"),
        ("COOKIES_ENABLED", "'cookies'"),
        ("ITEM_PIPELINES", "`pipelines`"),
    ],
)
def test_a_scrapy_setting_name_is_answered_with_ours(scrapy, ours):
    with pytest.raises(SettingsError, match="Scrapy's name") as caught:
        Settings.parse_assignment(f"{scrapy}=1")
    assert ours in str(caught.value)

    class S(Plain):
        settings = {scrapy: 1}

    with pytest.raises(SettingsError, match=ours.replace("`", ".")):
        Crawler(S())
