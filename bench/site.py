"""A deterministic static web site for crawl benchmarks (the project's copy of the shared generator).

Every page ``/p/<i>.html`` is reachable from ``/index.html``. Each page holds one "product"
(title, price, sku), about 6 KB of filler text (about 8 KB in all) and about 30 links: its
two children in a binary tree (so the site's depth is about log2(N)), 20 random links to
other pages written in several equivalent forms (relative, absolute, with a ``#fragment``,
with ``../``), three links to other hosts that a crawl confined to its own host must not
follow, one link to a ``/missing/`` page that 404s, a ``mailto:`` and a ``javascript:`` link.

A correct crawl therefore fetches exactly N pages (plus the index and N 404s) and extracts
exactly N items ``{url, title, price}``, whatever order it takes. ``manifest.json`` holds the
expected item count and a digest of the prices: sha256 over ``"<i>:<price>\\n"`` for i in
0..N-1, so a crawl's output can be checked whole (:func:`check_items`).

The output is byte-for-byte that of ``shared/benchsite/make_site.py`` for the same
``--pages``/``--seed``/``--filler`` (same random stream, same HTML), so figures taken with
either are comparable.

:func:`ensure_site` caches a site in a directory named by its parameters (e.g.
``/tmp/crawler-bench/site-20000-seed7``): it is generated into a temporary directory and
renamed into place once complete, so an interrupted generation never leaves a half site
that a later run would take for a whole one.

Usage (from the repository root)::

    python bench/site.py --pages 20000 [--seed 7] [--filler 6000] [--root /tmp/crawler-bench]
    python bench/site.py --pages 20000 --out DIR      # an explicit directory, always regenerated
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

#: Bumped whenever the generated HTML changes, so cached sites of an older shape are rebuilt.
GENERATOR_VERSION = 1
DEFAULT_ROOT = Path(tempfile.gettempdir()) / "crawler-bench"
DEFAULT_SEED = 7
DEFAULT_FILLER = 6000

FILLER_WORDS = [
    *("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod"),
    *("tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua"),
]

_PAGE_PATH = re.compile(r"/p/(\d+)\.html$")


def page_html(i: int, n: int, rng: random.Random, filler_bytes: int) -> tuple[str, str]:
    """The HTML of page ``i`` of ``n`` and its price; consumes ``rng`` exactly as make_site.py does."""
    links = []
    for child in (2 * i + 1, 2 * i + 2):
        if child < n:
            links.append(f"/p/{child}.html")
    for _ in range(20):
        j = rng.randrange(n)
        form = rng.randrange(4)
        if form == 0:
            links.append(f"/p/{j}.html")
        elif form == 1:
            links.append(f"{j}.html")  # relative to /p/
        elif form == 2:
            links.append(f"/p/{j}.html#reviews")
        else:
            links.append(f"../p/{j}.html")
    for _ in range(3):
        links.append(f"https://external-{rng.randrange(50)}.example/x/{rng.randrange(1000)}")
    links.append(f"/missing/{i}.html")
    links.append("mailto:sales@example.invalid")
    links.append("javascript:void(0)")
    rng.shuffle(links)
    anchors = "\n".join(f'<li><a href="{h}">link {k}</a></li>' for k, h in enumerate(links))
    price = f"{rng.randrange(1, 100000) / 100:.2f}"
    words = []
    size = 0
    while size < filler_bytes:
        w = rng.choice(FILLER_WORDS)
        words.append(w)
        size += len(w) + 1
    filler = " ".join(words)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Product {i}</title></head><body>\n"
        f'<div class="product" data-sku="SKU-{i:07d}">'
        f'<h1 class="title">Product {i}</h1>'
        f'<span class="price">{price}</span></div>\n'
        f'<p class="desc">{filler}</p>\n<ul class="links">\n{anchors}\n</ul>\n'
        "</body></html>\n"
    ), price


def generate(out: Path, pages: int, seed: int = DEFAULT_SEED, filler: int = DEFAULT_FILLER) -> dict:
    """Write the site into ``out`` (created if needed); returns the manifest (written last)."""
    rng = random.Random(seed)
    (out / "p").mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    total_bytes = 0
    for i in range(pages):
        html, price = page_html(i, pages, rng, filler)
        data = html.encode()
        total_bytes += len(data)
        (out / "p" / f"{i}.html").write_bytes(data)
        digest.update(f"{i}:{price}\n".encode())
    (out / "index.html").write_text(
        '<!DOCTYPE html><html><head><title>Shop</title></head><body><a href="/p/0.html">start</a></body></html>\n'
    )
    (out / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    with open(out / "sitemap.xml", "w") as f:
        f.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        )
        for i in range(pages):
            f.write(f"<url><loc>/p/{i}.html</loc></url>\n")
        f.write("</urlset>\n")
    manifest = {
        # the first four keys are make_site.py's; the rest are ours
        "pages": pages,
        "seed": seed,
        "items": pages,
        "price_digest": digest.hexdigest(),
        "filler": filler,
        "generator_version": GENERATOR_VERSION,
        "page_bytes_total": total_bytes,
        "fetches_expected": {"pages": pages + 1, "not_found": pages},  # index + pages; one /missing/ each
    }
    (out / "manifest.json").write_text(json.dumps(manifest) + "\n")
    return manifest


def site_dir(pages: int, seed: int = DEFAULT_SEED, filler: int = DEFAULT_FILLER, root: Path = DEFAULT_ROOT) -> Path:
    """Where the cached site for these parameters lives."""
    name = f"site-{pages}-seed{seed}" + ("" if filler == DEFAULT_FILLER else f"-filler{filler}")
    return Path(root) / name


def load_manifest(directory: Path) -> dict | None:
    try:
        return json.loads((Path(directory) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def ensure_site(
    pages: int, seed: int = DEFAULT_SEED, filler: int = DEFAULT_FILLER, root: Path = DEFAULT_ROOT
) -> tuple[Path, dict, bool]:
    """The cached site for these parameters, generated if missing or stale: ``(dir, manifest, generated)``."""
    target = site_dir(pages, seed, filler, root)
    manifest = load_manifest(target)
    if (
        manifest
        and manifest.get("generator_version") == GENERATOR_VERSION
        and manifest.get("pages") == pages
        and manifest.get("seed") == seed
        and manifest.get("filler") == filler
    ):
        return target, manifest, False
    return target, build_into(target, lambda tmp: generate(tmp, pages, seed, filler)), True


def build_into(target: Path, make: Callable[[Path], dict]) -> dict:
    """Run ``make`` on a fresh directory beside ``target``, then rename it into place: an
    interrupted generation never leaves a half site a later run would take for a whole one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        manifest = make(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; nginx's worker (nobody) must read it
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def price_digest(items: Iterable[dict]) -> tuple[str, int, int, list[str]]:
    """``(digest, items, distinct pages, problems)`` for crawled items ``{url, title, price}``.

    An item's page is the ``/p/<i>.html`` of its URL, fragment ignored (the server never sees
    it; some crawlers report the URL as it was linked, ``#reviews`` included). The digest is
    computed as the manifest's: sha256 over ``"<i>:<price>\\n"`` in page order.
    """
    prices: dict[int, str] = {}
    count = 0
    odd: dict[str, list] = {"not a product URL": [], "page yielded twice": [], "wrong title": []}
    for item in items:
        count += 1
        url = str(item.get("url", "")).partition("#")[0]
        match = _PAGE_PATH.search(url)
        if not match:
            odd["not a product URL"].append(url)
            continue
        i = int(match.group(1))
        if i in prices:
            odd["page yielded twice"].append(i)
        if item.get("title") != f"Product {i}":
            odd["wrong title"].append((i, item.get("title")))
        prices[i] = str(item.get("price"))
    digest = hashlib.sha256()
    for i in sorted(prices):
        digest.update(f"{i}:{prices[i]}\n".encode())
    problems = [f"{len(v)} items: {k} (e.g. {v[0]!r:.120})" for k, v in odd.items() if v]
    return digest.hexdigest(), count, len(prices), problems


def check_items(path: Path, manifest: dict, *, digest: bool = True) -> dict:
    """Check a JSONL file of items against the manifest: ``{"ok", "items", "distinct", "digest_ok", "problems"}``.

    The file is streamed (the harness stays small: its children's peak RSS starts from its own).
    """
    problems: list[str] = []

    def items(f: Iterable[str]) -> Iterable[dict]:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                if not problems:
                    problems.append(f"line {n} is not JSON: {line[:80]!r}")

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            got, count, distinct, item_problems = price_digest(items(f))
    except OSError as exc:
        return {"ok": False, "items": 0, "distinct": 0, "digest_ok": False, "problems": [f"no output: {exc}"]}
    problems += item_problems
    expected = manifest["items"]
    if count != expected:
        problems.append(f"{count} items, expected {expected}")
    if distinct != count:
        problems.append(f"{distinct} distinct pages among {count} items")
    digest_ok = got == manifest["price_digest"]
    if digest and not digest_ok and count == expected:
        problems.append("price digest differs from the manifest's")
    ok = not problems and (digest_ok or not digest)
    return {"ok": ok, "items": count, "distinct": distinct, "digest_ok": digest_ok, "problems": problems}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--filler", type=int, default=DEFAULT_FILLER, help="bytes of filler text per page")
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="cache directory (default: %(default)s)")
    ap.add_argument("--out", type=Path, help="write here instead (always regenerated, no cache)")
    args = ap.parse_args(argv)
    if args.pages < 1:
        ap.error("--pages must be at least 1")
    if args.out:
        manifest = generate(args.out, args.pages, args.seed, args.filler)
        print(f"wrote {args.pages} pages to {args.out}")
        return 0
    directory, manifest, generated = ensure_site(args.pages, args.seed, args.filler, args.root)
    print(f"{'wrote' if generated else 'cached'} {manifest['pages']} pages in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
