"""The listing's reasoning against a model portal, over thousands of random histories.

A list ordered by rank, paged 5 to a page (1 to 5 in the harsher test), changes by one random
addition or removal after a page served (re-reads included), as the contracts allow. Whatever
`paged_passes` asks, once it says the listing is complete every item that existed for the whole run
must have been read; when it says incomplete it names the ranges where items may be missing. The model stands in for HTTP
only: these histories are too many to serve (the same code is run over real HTTP in test_churn.py).
"""

from __future__ import annotations

import asyncio
import bisect
import random
from dataclasses import dataclass, field

import pytest

from connectors.paging import asked_again
from sync.listing import paged_passes

PAGE = 5


@dataclass
class _Page:
    page_no: int
    announced_total: int
    items: list[int]
    rejections: list = field(default_factory=list)


class _Portal:
    """`size` items, `page` to a page; after each page served, with probability `churn`, one item
    removed (probability `removals`) or added, anywhere or (`near`) right at the page just served."""

    def __init__(self, rnd: random.Random, size: int, churn: float, removals: float, *, page: int = PAGE,
                 near: bool = False, clamp: bool = False) -> None:
        self.rnd, self.churn, self.removals, self.size, self.near = rnd, churn, removals, page, near
        self.clamp = clamp  # a page beyond the last shows the last, numbered so (ASP.NET's GridView)
        self.items: list[float] = sorted(rnd.sample(range(0, 10_000, 2), size))
        self.ever_removed: set[float] = set()
        self.first = set(self.items)
        self.at = 0  # where the page just served ended

    def _change(self) -> None:
        if self.rnd.random() >= self.churn:
            return
        n = len(self.items)
        where = min(n, max(0, self.at + self.rnd.randint(-2, 2))) if self.near else self.rnd.randint(0, n)
        if n and self.rnd.random() < self.removals:
            self.ever_removed.add(self.items.pop(min(where, n - 1)))
            return
        low = self.items[where - 1] if where > 0 else -1.0
        high = self.items[where] if where < n else 10_001.0
        value = low + (high - low) * (0.25 + self.rnd.random() / 2)  # strictly between its neighbours
        bisect.insort(self.items, value)

    def _page(self, no: int) -> tuple[_Page, bool]:
        if self.clamp:
            no = max(1, min(no, -(-len(self.items) // self.size)))
        rows = self.items[(no - 1) * self.size: no * self.size]
        page = _Page(no, len(self.items), list(rows))
        last = len(rows) < self.size or no * self.size >= len(self.items)
        self.at = no * self.size
        self._change()
        return page, last

    async def pages(self):
        no = 1
        while True:
            page, last = self._page(no)
            ask = yield page
            while (again := asked_again(ask, no)) is not None:
                ask = yield self._page(again)[0]
            if last:
                return
            no += 1


class _Run:
    source = "model"

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.observer = self

    def reject(self, rows) -> None:
        pass

    def page(self, *args) -> None:
        pass

    def note(self, text: str) -> None:
        self.notes.append(text)


def _read(portal: _Portal) -> tuple[bool, set, list[str]]:
    run = _Run()
    seen: set = set()

    async def on_new(items: list) -> None:
        seen.update(items)

    listing = asyncio.run(paged_passes(run, 1405, portal.pages, key_of=lambda i: i, items_of=lambda p: p.items,
                                       on_new=on_new, rank_of=lambda i: i))
    return listing.settled, (portal.first - portal.ever_removed) - seen, run.notes


@pytest.mark.parametrize("churn,removals", [(1.0, 0.5), (1.0, 0.8), (0.5, 0.5), (0.2, 1.0)])
def test_a_listing_called_complete_holds_every_item_that_stayed(churn, removals):
    complete = 0
    for seed in range(400):
        rnd = random.Random(seed)
        settled, missed, notes = _read(_Portal(rnd, rnd.randrange(0, 40), churn, removals))
        if settled:
            complete += 1
            assert not missed, (seed, sorted(missed), notes)
        else:
            assert any("may be missing" in note for note in notes), (seed, notes)
    assert complete > 0  # the model does reach complete listings


def _harsh(seed: int) -> _Portal:
    rnd = random.Random(seed)
    return _Portal(rnd, rnd.randrange(0, 60), rnd.choice([1.0, 0.7, 0.3]), rnd.choice([0.3, 0.5, 0.8]),
                   page=rnd.randint(1, 5), near=rnd.random() < 0.5, clamp=rnd.random() < 0.5)


@pytest.mark.slow  # the model's many small portals; the larger cases above stay in the default run
def test_small_pages_changing_where_they_are_read_lose_nothing_called_complete():
    # pages of 1 to 5 rows, changes right at the page just served, half the portals clamping a page
    # number beyond the last to the last (as Nezarat-4's grid does). Seeds 10829, 19568 and 23021
    # broke a first version (f3ef562) that kept a gap per boundary instead of what reads showed;
    # 34222 broke the next (be3bf44), which took a clamped page for the list's last
    complete = 0
    for seed in [10829, 19568, 23021, 34222, *range(1500)]:
        settled, missed, notes = _read(_harsh(seed))
        complete += settled
        assert not (settled and missed), (seed, sorted(missed), notes)
    assert complete > 1000
