"""What a sync run reports: the outcome of each source, and the hooks that watch it run.

:class:`SourceOutcome` is what ``sync.run_sync`` returns per source (and what the run record in
the store holds); :class:`SyncObserver` is how the CLI (rich progress) or a test watches a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


class SyncObserver:
    """Progress hooks for the CLI (rich) or tests; every method is optional to override."""

    def started(self, source: str, run_id: int, years: Sequence[int], mode: str) -> None: ...
    def page(self, source: str, year: int, page_no: int, rows: int, announced: int) -> None: ...
    def details_queued(self, source: str, n: int) -> None: ...
    def detail_done(self, source: str) -> None: ...
    def rejected(self, source: str, n: int) -> None: ...
    def note(self, source: str, text: str) -> None: ...
    def finished(self, outcome: SourceOutcome) -> None: ...


@dataclass
class SourceOutcome:
    source: str
    run_id: int | None
    status: str  # success | incomplete | failed | interrupted | locked | disabled
    mode: str = ""
    years: list[int] = field(default_factory=list)
    announced: int = 0
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    gone: int = 0
    rejected: int = 0
    requests: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    completing_full: list[int] = field(default_factory=list)  # years read whole for an earlier full run's sake

    @property
    def mode_text(self) -> str:
        """The run's mode as every output names it (:func:`mode_text`)."""
        return mode_text(self.mode, self.completing_full)

    @property
    def ok(self) -> bool:
        return self.status in ("success", "disabled")


def mode_text(mode: str, completing_full: Sequence[int] = ()) -> str:
    """A run's mode as people read it: an incremental run that read years whole to finish an earlier,
    stopped full run says so, 'incremental (+ full 1404, owed)' (a new user read it as an incremental
    run only) — in `runs`, the sync's summary and the service's log alike."""
    years = ", ".join(map(str, completing_full))
    return f"{mode} (+ full {years}, owed)" if years else mode
