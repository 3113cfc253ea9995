"""Helpers of the simulator's own tests: a *plain* client (httpx + BeautifulSoup) and readers.

The client is deliberately naive — a few lines per page — and shares nothing with connectors/.
The readers undo the portal quirks just enough to compare pages with the ground truth.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import jdatetime
from bs4 import BeautifulSoup

from simulator import ManualClock, Simulator, SimulatorConfig

EXAMPLES = Path("/work/shared/portals/examples")
GRID = "ctl00$ContentPlaceHolder1$gvProjects"
F_YEAR = "ctl00$ContentPlaceHolder1$ddlYear"
F_COUNTY = "ctl00$ContentPlaceHolder1$ddlCounty"
F_MODIFIED = "ctl00$ContentPlaceHolder1$txtModifiedFrom"
F_SEARCH = "ctl00$ContentPlaceHolder1$btnSearch"


def make_sim(clock: ManualClock | None = None, **overrides) -> Simulator:
    """A started simulator on free ports; small by default."""
    settings = dict(seed=7, projects=90, agreements=70, time_source=clock)
    settings.update(overrides)
    return Simulator(SimulatorConfig(**settings)).start()


def soup(response: httpx.Response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "lxml")


def form_fields(page: BeautifulSoup) -> dict[str, str]:
    """Every named input and select of the page's form, as a browser would post them (no submits)."""
    fields: dict[str, str] = {}
    for element in page.select("form input"):
        if element.get("type") == "submit" or not element.get("name"):
            continue
        fields[element["name"]] = element.get("value", "")
    for select in page.select("form select"):
        chosen = select.find("option", selected=True) or select.find("option")
        fields[select["name"]] = chosen["value"]
    return fields


class Nezarat:
    """A plain browser-like client of Nezarat-4."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.http = httpx.Client(base_url=sim.nezarat_url, follow_redirects=False, timeout=10)
        self.page: BeautifulSoup | None = None

    def login(self, user: str = "budget.user", password: str = "demo-password", return_url: str | None = None):
        target = "/Login.aspx"
        if return_url:
            target += "?" + str(httpx.QueryParams({"ReturnUrl": return_url}))
        page = soup(self.http.get(target))
        data = form_fields(page)
        data.update({"txtUserName": user, "txtPassword": password, "btnLogin": "ورود"})
        return self.http.post(target, data=data)

    def list(self) -> httpx.Response:
        response = self.http.get("/Projects/ProjectList.aspx")
        self.page = soup(response) if response.status_code == 200 else None
        return response

    def search(self, year: int | None = None, county: str = "0", modified: str = "") -> httpx.Response:
        data = form_fields(self.page)
        if year is not None:
            data[F_YEAR] = str(year)
        data.update({F_COUNTY: county, F_MODIFIED: modified, F_SEARCH: "جستجو"})
        return self._post(data)

    def goto(self, page_no: int | str, fields: dict | None = None) -> httpx.Response:
        data = fields if fields is not None else form_fields(self.page)
        data = dict(data, __EVENTTARGET=GRID, __EVENTARGUMENT=f"Page${page_no}")
        return self._post(data)

    def _post(self, data: dict) -> httpx.Response:
        response = self.http.post("/Projects/ProjectList.aspx", data=data)
        if response.status_code == 200 and "gvProjects" in response.text:
            self.page = soup(response)
        return response

    def detail(self, portal_id: int, year: int | None = None) -> httpx.Response:
        params = {"id": portal_id} if year is None else {"id": portal_id, "year": year}
        return self.http.get("/Projects/ProjectDetail.aspx", params=params)

    def close(self) -> None:
        self.http.close()


class Saba:
    """A plain client of SABA."""

    def __init__(self, sim: Simulator) -> None:
        self.http = httpx.Client(base_url=sim.saba_url, timeout=10)
        self.token: str | None = None

    def authenticate(self, user: str = "budget.user", password: str = "demo-password") -> httpx.Response:
        response = self.http.post("/api/v1/auth/token", json={"username": user, "password": password})
        if response.status_code == 200:
            self.token = response.json()["access_token"]
        return response

    def get(self, path: str, **params) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.http.get(path, params=params, headers=headers)

    def close(self) -> None:
        self.http.close()


# ------------------------------------------------------------------ reading values back

_TO_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_TO_PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
EMPTY = {"", "-", "—"}


def ascii_digits(text: str) -> str:
    return text.translate(_TO_ASCII)


def cell_text(cell) -> str:
    return cell.get_text().replace("\xa0", " ").strip()


def read_number(text: str) -> Decimal | None:
    text = text.replace("\xa0", " ").strip()
    if text in EMPTY:
        return None
    negative = text.startswith("(") and text.endswith(")") or text.startswith("-")
    text = ascii_digits(text).strip("()-").replace("%", "").replace("٪", "").replace(" ", "")
    text = re.sub("[٬،,]", "", text)
    text = re.sub("[٫/]", ".", text)
    value = Decimal(text)
    return -value if negative else value


def read_date(text: str) -> str | None:
    text = ascii_digits(text.replace("\xa0", " ").strip())
    if text in EMPTY:
        return None
    y, m, d = (int(x) for x in text.split(" ")[0].split("/"))
    return jdatetime.date(y, m, d).togregorian().isoformat()


def canonical_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("ي", "ی").replace("ك", "ک").replace("ى", "ی").replace("\u0640", "")
    text = re.sub(r"\s+", " ", text.replace("\xa0", " ")).strip()
    return ascii_digits(text).translate(_TO_PERSIAN)


def match_key(text: str) -> str:
    """Equal for two spellings that differ only by the contract's quirks (ZWNJ, spaces, letters)."""
    return canonical_text(text).replace("\u200c", "").replace(" ", "")


def gregorian(y: int, m: int, d: int) -> date:
    return jdatetime.date(y, m, d).togregorian()

