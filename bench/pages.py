"""CPU to read a Nezarat-4 detail page (a script, not a test).

    .venv/bin/python bench/pages.py                      # against connectors/nezarat4/pages.py at HEAD
    .venv/bin/python bench/pages.py --before 37f0139     # against that commit's pages.py

Renders every detail page of a small simulator world in-process (the portal's own renderer, no
HTTP: `--projects 100` gives ~120 pages, every year of every project) and prints, in ms of CPU
per page: a full `BeautifulSoup(html, "lxml")` parse; the strained parse `read_detail_page` now
uses; `read_detail_page` of the `--before` revision (read with `git show`) and as it is in the
working tree, with whether both read every page the same; and that reading with `canonical.detail`.
Each figure is the sum over batches of 20 pages of each batch's fastest of `--rounds` timings, so
another process busy on the machine inflates it less. About 10 s on one core. (`--before` takes
revisions from 37f0139 on, where pages.py imports foundation/; earlier ones import budgetwatch.)
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bs4 import BeautifulSoup  # noqa: E402

from connectors.nezarat4 import canonical, pages  # noqa: E402
from simulator import Simulator, SimulatorConfig  # noqa: E402
from simulator.nezarat.portal import Session  # noqa: E402


def detail_pages(projects: int) -> list[str]:
    sim = Simulator(SimulatorConfig(seed=7, projects=projects, agreements=10))  # not started
    session = Session("bench", "bench", 1, 0.0)
    return [sim.nezarat.pages.detail_page(session, project, record)
            for _, project in sorted(sim.world.projects.items())
            for _, record in sorted(project.years.items())]


def pages_at(rev: str):
    """connectors/nezarat4/pages.py as it was at ``rev``, imported beside the current one."""
    source = subprocess.run(["git", "show", f"{rev}:connectors/nezarat4/pages.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "pages_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("connectors.nezarat4._pages_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def reading(module, html: str) -> str:
    try:
        out = module.read_detail_page(html, "ProjectDetail.aspx")
    except Exception as exc:  # noqa: BLE001 - a LayoutChanged is a reading too
        out = (type(exc).__name__, str(exc))
    return repr(out).replace("._pages_before", ".pages")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="HEAD", help="git revision of pages.py to compare with")
    ap.add_argument("--projects", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    html = detail_pages(args.projects)
    before = pages_at(args.before)
    same = all(reading(before, h) == reading(pages, h) for h in html)
    variants = {
        "full parse BeautifulSoup(html, 'lxml')": lambda h: BeautifulSoup(h, "lxml"),
        "strained parse (what read_detail_page parses)":
            lambda h: BeautifulSoup(h, "lxml", parse_only=pages._DETAIL_STRAINER),
        f"read_detail_page at {args.before}": lambda h: before.read_detail_page(h, "p"),
        "read_detail_page now": lambda h: pages.read_detail_page(h, "p"),
        "read_detail_page + canonical.detail now (what a worker does)":
            lambda h: canonical.detail(pages.read_detail_page(h, "p"), 1, 1405),
    }
    batches = [html[i:i + 20] for i in range(0, len(html), 20)]
    best = {name: [float("inf")] * len(batches) for name in variants}
    for _ in range(args.rounds):
        for j, batch in enumerate(batches):
            for name, read in variants.items():  # interleaved: drift in machine load hits all alike
                t = time.process_time()
                for h in batch:
                    read(h)
                best[name][j] = min(best[name][j], time.process_time() - t)
    print(f"{len(html)} detail pages, {sum(map(len, html)) // len(html)} characters on average; "
          f"same readings as {args.before}: {same}")
    for name, times in best.items():
        print(f"  {sum(times) / len(html) * 1000:6.3f} ms CPU/page  {name}")


if __name__ == "__main__":
    main()
