"""Nezarat-4 pages read in one call each, HTML in, what the client hands on out.

These are the functions the client runs in a worker process (``connectors.offload``), so they are
module-level, take and return picklable values and have no side effects; ``pages`` and
``canonical`` do the work. With ``parse_workers=0`` the client calls them on the event loop.
"""

from __future__ import annotations

from foundation.records import ProjectDetail
from . import canonical, pages
from .canonical import RejectedDetail


def detail(html: str, page: str, portal_id: int, fiscal_year: int
           ) -> ProjectDetail | RejectedDetail | None:
    """A detail page as :meth:`Nezarat4Client.project_detail` returns it (None: not found)."""
    raw = pages.read_detail_page(html, page)
    if raw is pages.NOT_FOUND:
        return None
    return canonical.detail(raw, portal_id, fiscal_year)


def list_page(html: str, page_url: str, page: str) -> pages.ListPage:
    """A list page's form, rows and pager (their values are read on the loop: they are few)."""
    return pages.read_list_page(html, page_url, page)
