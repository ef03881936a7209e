"""Item exporters (JSON Lines, CSV): file contents, append/overwrite, flushing, choice by extension."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime
import json
from pathlib import Path

import pytest
from aiohttp import web
from crawler_plugins.exporters import CsvExporter, JsonLinesExporter, exporter_for
from support import FAST, html, links

from crawler import Crawler, Response, Spider


class _Spider(Spider):
    name = "exporter-test"


@dataclasses.dataclass
class Price:
    amount: float
    currency: str


@dataclasses.dataclass
class Product:
    title: str
    price: Price
    tags: list[str]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


async def export(exporter, items) -> None:
    spider = _Spider()
    await exporter.open(spider)
    try:
        for item in items:
            assert await exporter.process_item(item, spider) is item  # passes the item on
    finally:
        await exporter.close(spider)


# -- JSON Lines --------------------------------------------------------------------------------


async def test_jsonl_each_item_is_on_disk_before_close(tmp_path):
    path = tmp_path / "items.jsonl"
    exporter = JsonLinesExporter(path)
    spider = _Spider()
    await exporter.open(spider)
    try:
        await exporter.process_item({"n": 1}, spider)
        assert path.read_text(encoding="utf-8") == '{"n": 1}\n'
        await exporter.process_item({"n": 2}, spider)
        assert read_jsonl(path) == [{"n": 1}, {"n": 2}]
    finally:
        await exporter.close(spider)
    assert read_jsonl(path) == [{"n": 1}, {"n": 2}]


async def test_jsonl_keeps_non_ascii_text(tmp_path):
    path = tmp_path / "items.jsonl"
    item = {"title": "Café crème — 東京 🚀", "author": "Åsa Ødegård"}
    await export(JsonLinesExporter(path), [item])
    raw = path.read_bytes()
    assert "Café crème — 東京 🚀".encode() in raw
    assert b"\\u" not in raw
    assert read_jsonl(path) == [item]


async def test_jsonl_exports_dataclass_items(tmp_path):
    path = tmp_path / "items.jsonl"
    await export(JsonLinesExporter(path), [Product("Book", Price(9.5, "EUR"), ["paper", "new"])])
    assert read_jsonl(path) == [
        {"title": "Book", "price": {"amount": 9.5, "currency": "EUR"}, "tags": ["paper", "new"]}
    ]


async def test_jsonl_writes_values_json_cannot_as_text(tmp_path):
    path = tmp_path / "items.jsonl"
    await export(JsonLinesExporter(path), [{"when": datetime.date(2024, 5, 17)}])
    assert read_jsonl(path) == [{"when": "2024-05-17"}]


async def test_jsonl_appends_unless_overwrite(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"old": 1}\n', encoding="utf-8")
    await export(JsonLinesExporter(path), [{"new": 2}])
    assert read_jsonl(path) == [{"old": 1}, {"new": 2}]

    await export(JsonLinesExporter(path, overwrite=True), [{"newer": 3}])
    assert read_jsonl(path) == [{"newer": 3}]


async def test_exporter_creates_missing_directories(tmp_path):
    path = tmp_path / "out" / "2024" / "items.jsonl"
    await export(exporter_for(str(path)), [{"n": 1}])
    assert read_jsonl(path) == [{"n": 1}]


# -- CSV ---------------------------------------------------------------------------------------


async def test_csv_has_one_header_and_a_row_per_item(tmp_path):
    path = tmp_path / "items.csv"
    items = [
        {"title": "Plain", "price": 1.5, "note": "a, b and \"c\""},
        {"title": "Multi\nline", "price": 2, "note": ""},
        {"title": "Third", "price": 3, "note": "x"},
    ]
    await export(CsvExporter(path), items)
    rows = read_csv(path)
    assert rows == [
        ["title", "price", "note"],
        ["Plain", "1.5", 'a, b and "c"'],
        ["Multi\nline", "2", ""],
        ["Third", "3", "x"],
    ]


async def test_csv_each_row_is_on_disk_before_close(tmp_path):
    path = tmp_path / "items.csv"
    exporter = CsvExporter(path)
    spider = _Spider()
    await exporter.open(spider)
    try:
        await exporter.process_item({"title": "A", "price": 1}, spider)
        assert read_csv(path) == [["title", "price"], ["A", "1"]]
        await exporter.process_item({"title": "B", "price": 2}, spider)
        assert read_csv(path) == [["title", "price"], ["A", "1"], ["B", "2"]]
    finally:
        await exporter.close(spider)


async def test_csv_keeps_non_ascii_and_writes_nested_values_as_json(tmp_path):
    path = tmp_path / "items.csv"
    await export(CsvExporter(path), [{"title": "Œuvres — 東京", "tags": ["été", "neu"], "meta": {"k": "ü"}}])
    assert "Œuvres — 東京" in path.read_text(encoding="utf-8")
    header, row = read_csv(path)
    record = dict(zip(header, row, strict=True))
    assert record["title"] == "Œuvres — 東京"
    assert json.loads(record["tags"]) == ["été", "neu"]
    assert json.loads(record["meta"]) == {"k": "ü"}


async def test_csv_exports_dataclass_items(tmp_path):
    path = tmp_path / "items.csv"
    await export(CsvExporter(path), [Product("Book", Price(9.5, "EUR"), ["paper"])])
    header, row = read_csv(path)
    assert header == ["title", "price", "tags"]
    record = dict(zip(header, row, strict=True))
    assert record["title"] == "Book"
    assert json.loads(record["price"]) == {"amount": 9.5, "currency": "EUR"}
    assert json.loads(record["tags"]) == ["paper"]


async def test_csv_append_reuses_the_existing_header(tmp_path):
    path = tmp_path / "items.csv"
    await export(CsvExporter(path), [{"title": "A", "price": 1}])
    # Same fields, another order, and one field missing: values go under the file's columns.
    await export(CsvExporter(path), [{"price": 2, "title": "B"}, {"title": "C"}])
    assert read_csv(path) == [["title", "price"], ["A", "1"], ["B", "2"], ["C", ""]]


async def test_csv_overwrite_starts_a_new_file(tmp_path):
    path = tmp_path / "items.csv"
    await export(CsvExporter(path), [{"title": "A", "price": 1}])
    await export(CsvExporter(path, overwrite=True), [{"name": "Z", "size": "L"}])
    assert read_csv(path) == [["name", "size"], ["Z", "L"]]


async def test_csv_append_to_empty_file_writes_a_header(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("", encoding="utf-8")
    await export(CsvExporter(path), [{"title": "A"}])
    assert read_csv(path) == [["title"], ["A"]]


# -- choosing an exporter ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("items.jsonl", JsonLinesExporter),
        ("items.jl", JsonLinesExporter),
        ("items.ndjson", JsonLinesExporter),
        ("ITEMS.JSONL", JsonLinesExporter),
        ("items.csv", CsvExporter),
        ("items.CSV", CsvExporter),
    ],
)
def test_exporter_for_extension(tmp_path, name, kind):
    exporter = exporter_for(str(tmp_path / name))
    assert isinstance(exporter, kind)
    assert not (tmp_path / name).exists()  # nothing written before the crawl opens it


@pytest.mark.parametrize("name", ["items.xml", "items.json.gz", "items"])
def test_unknown_extension_is_a_clear_error(tmp_path, name):
    with pytest.raises(ValueError) as caught:
        exporter_for(str(tmp_path / name))
    message = str(caught.value)
    assert name in message
    assert "jsonl" in message
    assert "csv" in message
    assert not (tmp_path / name).exists()


# -- exporters in a crawl ----------------------------------------------------------------------


@dataclasses.dataclass
class Page:
    url: str
    title: str


def catalogue_spider(server, count: int):
    server.route("/", links(*(f"/p/{i}" for i in range(count))))
    for i in range(count):
        server.route(f"/p/{i}", html(f"<h1>Pâge {i}</h1>"))

    class Catalogue(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response: Response):
            title = response.css("h1::text").get()
            if title:
                yield Page(response.url, title)
            for request in response.follow_all(css="a"):
                yield request

    return Catalogue()


async def test_crawl_items_are_on_disk_as_they_stream(server, tmp_path):
    path = tmp_path / "items.jsonl"
    crawler = Crawler(catalogue_spider(server, 8), exporters=[exporter_for(str(path))])
    missing: list[Page] = []
    streamed: list[Page] = []

    async def watch() -> None:
        async for item in crawler.items():
            streamed.append(item)
            on_disk = read_jsonl(path)
            if dataclasses.asdict(item) not in on_disk:
                missing.append(item)

    watcher = asyncio.create_task(watch())
    stats = await asyncio.wait_for(crawler.run(), 30)
    await asyncio.wait_for(watcher, 5)

    assert len(streamed) == stats.items == 8
    assert missing == []
    assert sorted(item["title"] for item in read_jsonl(path)) == [f"Pâge {i}" for i in range(8)]


async def test_crawl_exports_to_csv(server, tmp_path):
    path = tmp_path / "items.csv"
    stats = await asyncio.wait_for(Crawler(catalogue_spider(server, 5), exporters=[exporter_for(str(path))]).run(), 30)
    assert stats.items == 5
    rows = read_csv(path)
    assert rows[0] == ["url", "title"]
    assert sorted(row[1] for row in rows[1:]) == [f"Pâge {i}" for i in range(5)]


async def test_cancelled_crawl_keeps_exported_items_whole(server, tmp_path):
    count = 200
    server.route("/", links(*(f"/p/{i}" for i in range(count))))

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05 if request.path != "/p/3" else 60)
        return web.Response(text=html(f"<h1>{request.path}</h1>"), content_type="text/html")

    for i in range(count):
        server.route(f"/p/{i}", slow)

    class Slow(Spider):
        start_urls = [server.url("/")]
        settings = {**FAST, "domain_concurrency": 4}

        async def parse(self, response: Response):
            title = response.css("h1::text").get()
            if title:
                yield {"path": title, "padding": "é" * 5000}
            for request in response.follow_all(css="a"):
                yield request

    path = tmp_path / "items.jsonl"
    crawler = Crawler(Slow(), exporters=[exporter_for(str(path))])
    seen: list[dict] = []

    async def watch() -> None:
        async for item in crawler.items():
            seen.append(item)
            if len(seen) == 10:
                task.cancel()

    watcher = asyncio.create_task(watch())
    task = asyncio.create_task(crawler.run())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    await asyncio.wait_for(watcher, 5)

    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    exported = [json.loads(line) for line in text.splitlines()]
    assert len(exported) == crawler.statistics().items
    assert len(exported) >= 10
    assert [item["path"] for item in seen] == [item["path"] for item in exported[: len(seen)]]
    assert crawler.statistics().close_reason == "cancelled"


async def test_a_csv_cut_back_to_empty_writes_its_header_again(tmp_path):
    from crawler_plugins.exporters import CsvExporter

    from crawler import Spider

    class _S(Spider):
        name = "s"

        async def parse(self, response):
            return None

    exporter = CsvExporter(tmp_path / "out.csv")
    await exporter.open(_S())
    await exporter.process_item({"a": 1}, _S())
    await exporter.close(_S())
    exporter.resume_at(0)  # e.g. a shared crawl's worker whose uncommitted rows are dropped
    await exporter.open(_S())
    await exporter.process_item({"a": 2}, _S())
    await exporter.close(_S())
    assert (tmp_path / "out.csv").read_text().splitlines() == ["a", "2"]


# -- a JSON array that stays valid --------------------------------------------------------------


async def test_json_array_is_valid_after_every_item_even_without_close(tmp_path):
    from crawler_plugins.exporters import JsonArrayExporter

    path = tmp_path / "items.json"
    exporter = JsonArrayExporter(path)
    await exporter.open(_Spider())
    assert json.loads(path.read_text()) == []
    for n in range(3):
        await exporter.process_item({"n": n, "name": "café"}, _Spider())
        assert json.loads(path.read_text()) == [{"n": k, "name": "café"} for k in range(n + 1)]
    # No close(): as after kill -9, the file is a whole array already.
    assert json.loads(path.read_text())[-1] == {"n": 2, "name": "café"}


async def test_json_array_appends_inside_the_existing_array(tmp_path):
    from crawler_plugins.exporters import JsonArrayExporter

    path = tmp_path / "items.json"
    for run in range(2):
        exporter = JsonArrayExporter(path)
        await exporter.open(_Spider())
        await exporter.process_item({"run": run}, _Spider())
        await exporter.close(_Spider())
    assert json.loads(path.read_text()) == [{"run": 0}, {"run": 1}]
    exporter = JsonArrayExporter(path, overwrite=True)
    await exporter.open(_Spider())
    await exporter.close(_Spider())
    assert json.loads(path.read_text()) == []


async def test_json_array_torn_by_a_crash_is_repaired_when_opened_again(tmp_path):
    from crawler_plugins.exporters import JsonArrayExporter

    path = tmp_path / "items.json"
    path.write_text('[\n{"n": 0},\n{"n": 1},\n{"n": 2, "na')  # cut in the middle of a write
    exporter = JsonArrayExporter(path)
    await exporter.open(_Spider())
    await exporter.process_item({"n": 3}, _Spider())
    await exporter.close(_Spider())
    assert json.loads(path.read_text()) == [{"n": 0}, {"n": 1}, {"n": 3}]


async def test_crawl_exports_a_json_array_by_extension(server, tmp_path):
    server.route("/", links("/a", "/b"))
    server.route("/a", html("a", title="A"))
    server.route("/b", html("b", title="B"))

    class S(Spider):
        start_urls = [server.url("/")]

        async def parse(self, response: Response):
            yield {"title": response.css("title::text").get()}
            for request in response.follow_all(css="a"):
                yield request

    exporter = exporter_for(str(tmp_path / "out.json"))
    await Crawler(S(), FAST, exporters=[exporter]).run()
    assert sorted(item["title"] for item in json.loads((tmp_path / "out.json").read_text())) == ["A", "B", "page"]


def test_json_array_is_valid_after_kill_9(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from test_cli import SLOW_SHOP, write_spider

    spider = write_spider(tmp_path, SLOW_SHOP)
    out = tmp_path / "items.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler", "run", str(spider), "-O", str(out)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if out.exists() and out.read_text().count('"url"') >= 5:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    items = json.loads(out.read_text())  # a whole array, with no closing step run
    assert len(items) >= 5
    assert len({item["url"] for item in items}) == len(items)


async def test_json_array_keeps_items_with_line_separators_through_a_resume(tmp_path):
    from crawler_plugins.exporters import JsonArrayExporter

    path = tmp_path / "items.json"
    exporter = JsonArrayExporter(path)
    await exporter.open(_Spider())
    await exporter.process_item({"t": "x\u2028y"}, _Spider())  # json.dumps leaves U+2028 as it is
    await exporter.process_item({"t": "é"}, _Spider())
    checkpoint = exporter.position()
    await exporter.process_item({"t": "after the checkpoint"}, _Spider())
    await exporter.close(_Spider())

    resumed = JsonArrayExporter(path)
    resumed.resume_at(checkpoint)  # a resumed crawl cuts back to its checkpoint
    await resumed.open(_Spider())
    await resumed.process_item({"t": "resumed"}, _Spider())
    await resumed.close(_Spider())
    assert json.loads(path.read_text()) == [{"t": "x\u2028y"}, {"t": "é"}, {"t": "resumed"}]


async def test_json_array_refuses_a_file_it_cannot_read_instead_of_wiping_it(tmp_path):
    from crawler_plugins.exporters import JsonArrayExporter

    path = tmp_path / "items.json"
    path.write_text('[{"a": 1}, {"a": 2}, {"a": 3')  # someone else's compact array, torn
    with pytest.raises(ValueError, match="not touching it"):
        await JsonArrayExporter(path).open(_Spider())
    assert path.read_text() == '[{"a": 1}, {"a": 2}, {"a": 3'


@pytest.mark.parametrize("kind", ["JsonLinesExporter", "CsvExporter"])
async def test_position_is_where_the_last_item_ends_in_bytes(tmp_path, kind):
    # A shared or resumed crawl commits this position and cuts the file back to it after a
    # crash: it must be the file's size in bytes after each item, non-ASCII text included.
    import crawler_plugins.exporters as exporters

    path = tmp_path / "items.out"
    exporter = getattr(exporters, kind)(path)
    await exporter.open(_Spider())
    assert exporter.position() == 0
    for text in ("plain", "é and ü", "日本語", "emoji 🕷", "a,b\n\"quoted\""):
        await exporter.process_item({"t": text}, _Spider())
        assert exporter.position() == path.stat().st_size
    await exporter.close(_Spider())
    assert exporter.position() == path.stat().st_size

    again = getattr(exporters, kind)(path)  # appending: it starts at the file's end
    await again.open(_Spider())
    assert again.position() == path.stat().st_size
    await again.process_item({"t": "más"}, _Spider())
    assert again.position() == path.stat().st_size
    await again.close(_Spider())


async def test_json_array_cut_back_closes_the_array_in_place(tmp_path):
    # A shared crawl locks its output file: cutting an array back must not swap the file.
    from crawler_plugins.exporters import JsonArrayExporter

    path = tmp_path / "items.json"
    exporter = JsonArrayExporter(path)
    await exporter.open(_Spider())
    await exporter.process_item({"n": 1}, _Spider())
    checkpoint = exporter.position()
    await exporter.process_item({"n": 2}, _Spider())
    await exporter.close(_Spider())
    inode = path.stat().st_ino

    resumed = JsonArrayExporter(path)
    resumed.resume_at(checkpoint)
    await resumed.open(_Spider())
    assert path.stat().st_ino == inode, "the same file, not a rewritten one"
    await resumed.process_item({"n": 3}, _Spider())
    await resumed.close(_Spider())
    assert json.loads(path.read_text()) == [{"n": 1}, {"n": 3}]
    assert path.stat().st_ino == inode


_FULL_DISK = """
import asyncio, json, resource, signal, sys
from crawler_plugins.exporters import exporter_for

async def main(path, deferred):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, as ENOSPC on a disk that fills up
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    exporter = exporter_for(path)
    await exporter.open(None)
    if deferred:  # (a shared crawl: items wait for the flush before each commit)
        exporter.defer_writes()
    await exporter.process_item({"n": 1, "pad": "x" * 50}, None)
    exporter.flush()
    before = exporter.position()
    resource.setrlimit(resource.RLIMIT_FSIZE, (before + 20, hard))  # 20 bytes more fit
    try:
        await exporter.process_item({"n": 2, "pad": "y" * 50}, None)
        exporter.flush()
    except OSError:
        pass  # the crawler logs exporter_error and goes on (a shared crawl redoes the pages)
    else:
        raise AssertionError("the write did not fail")
    assert exporter.position() == before, "counted as it is on disk"
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    await exporter.process_item({"n": 3, "pad": "z" * 50}, None)
    exporter.flush()
    committed = exporter.position()
    await exporter.close(None)
    resumed = exporter_for(path)  # a resumed crawl (or a shared crawl's next worker)
    resumed.resume_at(committed)
    await resumed.open(None)
    await resumed.process_item({"n": 4}, None)
    await resumed.close(None)

asyncio.run(main(sys.argv[1], sys.argv[2] == "deferred"))
"""


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".json":
        return list(json.loads(path.read_text()))
    if path.suffix == ".csv":
        return list(csv.DictReader(path.open(newline="")))
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("mode", ["each", "deferred"])
@pytest.mark.parametrize("name", ["out.jsonl", "out.json", "out.csv"])
def test_a_write_that_fails_part_way_is_undone(tmp_path, name, mode):
    # A full disk can take part of an item and then fail. The part is cut off again, so the
    # position committed after the next item is where the file ends, and a resume there
    # keeps every item whole.
    import subprocess
    import sys

    path = tmp_path / name
    subprocess.run([sys.executable, "-c", _FULL_DISK, str(path), mode], check=True, timeout=60)
    rows = _rows(path)
    assert [int(row["n"]) for row in rows] == [1, 3, 4]


@pytest.mark.parametrize("name", ["out.jsonl", "out.json", "out.csv"])
async def test_deferred_writes_wait_for_flush_in_one_write(tmp_path, name):
    # A shared crawl commits the outputs' sizes itself: items wait in memory until the flush
    # before each commit, and position() counts them all the same.
    path = tmp_path / name
    exporter = exporter_for(str(path))
    await exporter.open(_Spider())
    exporter.defer_writes()
    empty = path.stat().st_size
    for n in range(3):
        await exporter.process_item({"n": n}, _Spider())
    assert path.stat().st_size == empty, "nothing written before the flush"
    exporter.flush()
    assert path.stat().st_size == exporter.position() + (2 if name.endswith(".json") else 0)
    await exporter.process_item({"n": 3}, _Spider())
    await exporter.close(_Spider())  # what waits is written at close too
    rows = _rows(path)
    assert [int(row["n"]) for row in rows] == [0, 1, 2, 3]


_FULL_AT_FIRST = """
import asyncio, resource, signal, sys
from crawler_plugins.exporters import exporter_for

async def main(path, deferred):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    exporter = exporter_for(path)
    await exporter.open(None)
    if deferred:
        exporter.defer_writes()
    resource.setrlimit(resource.RLIMIT_FSIZE, (10, hard))  # not even the header fits
    try:
        await exporter.process_item({"n": 1, "pad": "x" * 50}, None)
        exporter.flush()
    except OSError:
        pass
    else:
        raise AssertionError("the write did not fail")
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    await exporter.process_item({"n": 2, "pad": "y"}, None)
    await exporter.close(None)

asyncio.run(main(sys.argv[1], sys.argv[2] == "deferred"))
"""


@pytest.mark.parametrize("mode", ["each", "deferred"])
def test_a_csv_whose_header_could_not_be_written_writes_it_with_the_next_row(tmp_path, mode):
    import subprocess
    import sys

    path = tmp_path / "out.csv"
    subprocess.run([sys.executable, "-c", _FULL_AT_FIRST, str(path), mode], check=True, timeout=60)
    assert list(csv.DictReader(path.open(newline=""))) == [{"n": "2", "pad": "y"}]
