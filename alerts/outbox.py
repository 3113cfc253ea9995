"""Queuing digests: each expert's digest is rendered and recorded in the outbox in ONE transaction
with the record of what it tells them (store.alerts.alert_told), so a digest is never queued without
its deviations counting as told, nor the other way round. Also the read-only views of the same
digests: a preview for one expert, and .eml files for a dry run or the demo.

One expert's digest that cannot be built as a message (:class:`NotBuilt`) is not queued and is said
with its reason; the other experts' digests are queued all the same (a trial: one address the mail
headers refused stopped the queuing of every expert after it, and the send of those before it). Its
deviations stay news for that expert, for the send after the cause is fixed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from alerts.digest import Digest, build_digest
from alerts.render import Rendered, render_message
from alerts.settings import AlertsConfig, Expert
from reconcile.settings import RoutingConfig
from store import alerts as store_alerts

log = logging.getLogger(__name__)

# the From address of previews and demo files when alerts.sender is not set (never sent)
PREVIEW_SENDER = "budgetwatch@localhost"


@dataclass
class QueueReport:
    """What a queuing did; the counts first (the service logs a report's int fields)."""

    messages: int = 0  # digests queued
    deviations: int = 0  # news they hold, summed over recipients
    resolved: int = 0  # closing-section entries they hold
    no_news: int = 0  # experts with nothing new: no mail
    failed: int = 0  # experts whose digest could not be built as a message: not queued (not_built says why)
    disabled: bool = False  # alerts.enabled is false: nothing was looked at
    queued: list[tuple[str, int, int, int]] = field(default_factory=list)  # (recipient, outbox id, news, resolved)
    not_built: list[tuple[str, str]] = field(default_factory=list)  # (recipient, why)

    def add(self, recipient: str, outbox_id: int, news: int, resolved: int) -> None:
        self.queued.append((recipient, outbox_id, news, resolved))
        self.messages, self.deviations, self.resolved = self.messages + 1, self.deviations + news, self.resolved + resolved


class NotBuilt(Exception):
    """A digest that could not be made an e-mail (a header Python's email package refuses): ``why``,
    one line."""

    def __init__(self, recipient: str, why: str) -> None:
        super().__init__(f"the digest for {recipient} could not be built as a message: {why}")
        self.recipient, self.why = recipient, why


def _message(digest: Digest, alerts: AlertsConfig, now: datetime) -> Rendered:
    """`digest` as the e-mail to queue; raises :class:`NotBuilt`. The configuration refuses what is
    known to break a message (budgetwatch.config); this is the net under what it cannot know."""
    try:
        return render_message(digest, _sender(alerts), now, alerts.sender_name)
    except Exception as exc:  # noqa: BLE001 - any failure of one message is that message's, said with it
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise NotBuilt(digest.expert.address, f"{type(exc).__name__}: {why}") from exc


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _sender(alerts: AlertsConfig) -> str:
    return str(alerts.sender) if alerts.sender else PREVIEW_SENDER


def queue_digests(engine: Engine, alerts: AlertsConfig, experts: Sequence[Expert], routing: RoutingConfig, *,
                  now: datetime | None = None) -> QueueReport:
    """Record every expert's due digest in the outbox (one transaction per expert). No news, no mail.
    Nothing is queued while ``alerts.enabled`` is false (the deviations stay news for later)."""
    now = _now(now)
    report = QueueReport()
    if not alerts.enabled:
        report.disabled = True
        return report
    for expert in experts:
        with engine.begin() as conn:
            store_alerts.lock_for_queuing(conn)
            digest = build_digest(conn, expert, alerts, routing, now)
            if digest is None:
                report.no_news += 1
                continue
            try:
                rendered = _message(digest, alerts, now)
            except NotBuilt as exc:  # nothing recorded for this expert (the transaction has written nothing)
                report.failed += 1
                report.not_built.append((exc.recipient, exc.why))
                log.warning("%s; not queued, its deviations stay news for the next send", exc)
                continue
            outbox_id = store_alerts.record_digest(conn, _outbox_row(rendered, digest, now), digest.told())
            report.add(expert.address, outbox_id, len(digest.items), len(digest.resolved))
    return report


def _outbox_row(rendered: Rendered, digest: Digest, now: datetime) -> dict:
    return {"recipient": rendered.recipient, "expert_name": rendered.expert_name, "sender": rendered.sender,
            "message_id": rendered.message_id, "subject": rendered.subject, "body_text": rendered.body_text,
            "body_html": rendered.body_html, "raw": rendered.raw, "deviations": len(digest.items),
            "resolved": len(digest.resolved), "status": store_alerts.PENDING, "created_at": now,
            "next_attempt_at": now, "attempts": 0}


def preview(engine: Engine, alerts: AlertsConfig, expert: Expert, routing: RoutingConfig, *,
            now: datetime | None = None) -> tuple[Digest, Rendered] | None:
    """What `expert`'s next digest would hold, rendered; nothing is queued or marked. None: no news."""
    now = _now(now)
    with engine.connect() as conn:
        digest = build_digest(conn, expert, alerts, routing, now)
    if digest is None:
        return None
    return digest, _message(digest, alerts, now)


def eml_name(index: int, recipient: str) -> str:
    """'01-social.expert.eml': numbered, from the address's local part, safe on every file system."""
    local = re.sub(r"[^A-Za-z0-9._-]+", "_", recipient.partition("@")[0]) or "expert"
    return f"{index:02d}-{local}.eml"


def write_eml(out_dir: Path, name: str, raw: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_bytes(raw.encode("ascii"))
    return path


def write_digests(engine: Engine, alerts: AlertsConfig, experts: Sequence[Expert], routing: RoutingConfig,
                  out_dir: Path, *, now: datetime | None = None, first: int = 1) -> list[Path]:
    """Write the digests the experts would get next as .eml files in `out_dir`, changing nothing in
    the store; returns the files written (none for experts without news)."""
    paths = []
    for expert in experts:
        try:
            shown = preview(engine, alerts, expert, routing, now=now)
        except NotBuilt as exc:  # the other experts' files are written all the same
            log.warning("%s; no file written for it", exc)
            continue
        if shown is not None:
            paths.append(write_eml(Path(out_dir), eml_name(first + len(paths), expert.address), shown[1].raw))
    return paths


# the demo's sample experts: one per group, one expert of two groups, and the consolidation group
DEMO_EXPERTS = (
    Expert(name="کارشناس امور اجتماعی", email="social.expert@demo.mpo-kz.ir", groups=["social"]),
    Expert(name="کارشناس امور زیربنایی و تولیدی", email="infra.expert@demo.mpo-kz.ir",
           groups=["infrastructure", "production"]),
    Expert(name="کارشناس گروه تلفیق بودجه", email="talfiq.expert@demo.mpo-kz.ir", groups=["consolidation"]),
)


def write_demo_digests(engine: Engine, alerts: AlertsConfig, experts: Sequence[Expert], routing: RoutingConfig,
                       out_dir: Path, *, now: datetime | None = None) -> list[Path]:
    """The demo's digests: what each sample expert (e.g. DEMO_EXPERTS) would be sent now, as .eml
    files in `out_dir` (nothing queued, nothing sent; alerts.enabled need not be on)."""
    return write_digests(engine, alerts, experts, routing, out_dir, now=now)
