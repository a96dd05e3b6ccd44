"""A parser that lists what report.html holds, shared by the page tests (not a test module)."""
from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """Ids, tags, text and external references of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: dict[str, int] = {}
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for k, v in attrs:
            if k == "id" and v:
                self.ids.add(v)
            if k in ("src", "href", "xlink:href") and v and not v.startswith("#"):
                self.external.append(v)

    def handle_data(self, data: str) -> None:
        self.text.append(data)
