"""parsel's Selector with cheaper results, for the queries a spider runs once per link.

``response.css("a::attr(href)").getall()`` makes a Selector for each href of a page, and
parsel's constructor (argument checks, a namespaces dict merged per result) and ``get()``
(which hands a plain string to lxml's serialiser and catches the TypeError) cost more than
the rest of following that link. :class:`PageSelector` *is* a parsel ``Selector`` (a
subclass, so ``isinstance`` and every method hold) whose ``xpath()`` (and so ``css()``)
builds its results directly when the query uses no namespaces or variables, and whose
``get()`` returns a string result as it is. A property test compares every result with
parsel's own (``tests/test_properties.py``). Anything else goes to parsel unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # no stubs shipped
from parsel import Selector, SelectorList

__all__ = ["PageSelector"]

_DEFAULT_NAMESPACES = dict(Selector._default_namespaces)
# The fast path sets these slots itself; a parsel with others falls back to its own code.
_FAST = set(Selector.__slots__) == {"__weakref__", "_expr", "_huge_tree", "_text", "body", "namespaces", "root", "type"}


@functools.lru_cache(maxsize=256)
def _compiled(query: str) -> etree.XPath:
    return etree.XPath(query, smart_strings=False)


class PageSelector(Selector):
    __slots__ = ()

    def xpath(
        self, query: str, namespaces: Mapping[str, str] | None = None, **kwargs: Any
    ) -> SelectorList[PageSelector]:
        kind = self.type
        if (
            not _FAST
            or namespaces
            or kwargs
            or kind not in ("html", "xml")
            or not isinstance(self.root, etree._Element)
            or self.namespaces != _DEFAULT_NAMESPACES
            or "re:" in query
            or "set:" in query
        ):
            return super().xpath(query, namespaces, **kwargs)
        try:
            result = _compiled(query)(self.root)
        except etree.XPathError:
            return super().xpath(query)  # parsel words the error
        if not isinstance(result, list):
            result = [result]
        new = PageSelector.__new__
        found = []
        for root in result:
            child = new(PageSelector)
            child.root = root
            child.type = kind
            child.namespaces = dict(_DEFAULT_NAMESPACES)
            child._expr = query
            child._huge_tree = True
            child._text = None
            found.append(child)
        return SelectorList(found)

    def get(self) -> Any:
        root = self.root
        if type(root) is str:  # an attribute or text result: parsel returns it as it is, after a TypeError
            return root
        return super().get()

    extract = get
