"""Who gets which deviations, and when again: digests delivered through a real SMTP server.

Expectations are written out from the routing (builders.ROUTING) and the issue's rules, deviation
by deviation, never computed by the code under test: an agency's group by routing.agencies else the
default; an expert gets their groups' agencies; consolidation also every critical; at or above
alerts.min_severity; acknowledged and dismissed never; news only (new, escalated, reopened).
"""

from __future__ import annotations

import alerts
from alerts.digest import build_digest
from tests.alerts.builders import (
    BOTH,
    EXPERTS,
    INFRA,
    ROUTING,
    SOCIAL,
    T0,
    TALFIQ,
    alerts_config,
    later,
    news_section,
    plain_part,
    subjects_in,
)


def send(engine, smtp, *, hours: float = 0, experts=EXPERTS, **config):
    cfg = alerts_config(smtp.port, **config)
    queued = alerts.queue_digests(engine, cfg, experts, ROUTING, now=later(hours))
    report = alerts.dispatch(engine, cfg, now=later(hours))
    assert report.ok, report
    return queued


def told(smtp, expert, facts, *, since: int = 0) -> list[set[int]]:
    """Per mail `expert` got (from the `since`-th mail on), the deviation ids its news section names."""
    by_subject = {subject: dev_id for dev_id, subject in facts.subjects.items()}
    return [{by_subject[s] for s in subjects_in(news_section(plain_part(r.message)))}
            for r in smtp.mailbox.to(expert.address)[since:]]


def test_each_expert_gets_exactly_their_groups_deviations_and_consolidation_every_critical(engine, facts, smtp):
    a = facts.deviation("305", "major")  # infrastructure
    b = facts.deviation("305", "critical", county=2)  # infrastructure; critical: consolidation too
    facts.deviation("118", "minor")  # social, below min_severity (major): nobody
    d = facts.deviation("118", "major", county=3)  # social
    e = facts.deviation("220", "critical")  # production; critical: consolidation too
    f = facts.deviation("900", "major")  # routed nowhere: the default group, consolidation
    g = facts.deviation(None, "major", county=None)  # no agency: the default group
    facts.deviation("305", "major", status="acknowledged")  # acknowledged: nobody
    facts.deviation("118", "critical", status="dismissed")  # dismissed: nobody
    facts.deviation("220", "major", status="resolved")  # resolved, never told: nobody
    k = facts.deviation("220", "major", kind="expense", rule="operation_shortfall")  # production

    send(engine, smtp)

    assert told(smtp, SOCIAL, facts) == [{d}]
    assert told(smtp, INFRA, facts) == [{a, b}]
    assert told(smtp, BOTH, facts) == [{a, b, e, k}]
    assert told(smtp, TALFIQ, facts) == [{b, e, f, g}]
    assert len(smtp.mailbox.received) == 4


def test_min_severity_minor_brings_the_minor_ones(engine, facts, smtp):
    c = facts.deviation("118", "minor")
    d = facts.deviation("118", "major")
    send(engine, smtp, experts=[SOCIAL], min_severity="minor")
    assert told(smtp, SOCIAL, facts) == [{c, d}]


def test_sending_again_without_changes_sends_nothing(engine, facts, smtp):
    facts.deviation("305", "critical")
    facts.deviation("118", "major")
    assert send(engine, smtp).messages == 4  # infra, both, consolidation (critical); social
    first = len(smtp.mailbox.received)
    again = send(engine, smtp, hours=24)
    assert (again.messages, again.no_news) == (0, 4)
    assert len(smtp.mailbox.received) == first


def test_an_escalation_is_sent_again_and_says_from_what(engine, facts, smtp):
    a = facts.deviation("305", "major")
    other = facts.deviation("305", "major")
    send(engine, smtp)
    facts.change(a, severity="critical")
    send(engine, smtp, hours=24)
    assert told(smtp, INFRA, facts) == [{a, other}, {a}]
    assert "تشدیدشده از عمده" in plain_part(smtp.mailbox.to(INFRA.address)[1].message)
    assert told(smtp, TALFIQ, facts) == [{a}]  # critical now: new for consolidation
    assert told(smtp, SOCIAL, facts) == []


def test_a_lower_severity_raised_back_is_not_news(engine, facts, smtp):
    a = facts.deviation("305", "critical")
    send(engine, smtp, experts=[INFRA])
    facts.change(a, severity="major")
    facts.change(a, severity="critical")
    assert send(engine, smtp, hours=24, experts=[INFRA]).messages == 0


def test_an_acknowledged_deviation_is_not_sent_until_it_escalates(engine, facts, smtp):
    a = facts.deviation("118", "major")
    facts.change(a, status="acknowledged")
    assert send(engine, smtp, experts=[SOCIAL]).messages == 0
    # reconcile/lifecycle.py: an acknowledged deviation found at a higher severity is open again
    facts.change(a, status="open", severity="critical")
    send(engine, smtp, hours=24, experts=[SOCIAL])
    assert told(smtp, SOCIAL, facts) == [{a}]


def test_a_told_deviation_acknowledged_later_is_not_sent_again(engine, facts, smtp):
    a = facts.deviation("118", "major")
    send(engine, smtp, experts=[SOCIAL])
    facts.change(a, status="acknowledged")
    facts.deviation("118", "major")  # news, so a digest goes out
    send(engine, smtp, hours=24, experts=[SOCIAL])
    second = plain_part(smtp.mailbox.to(SOCIAL.address)[1].message)
    assert facts.subjects[a] not in second


def test_resolved_ones_close_the_next_digest_with_news_once(engine, facts, smtp):
    a = facts.deviation("305", "major")
    b = facts.deviation("305", "critical")
    send(engine, smtp, experts=[INFRA])
    facts.change(b, status="resolved")
    assert send(engine, smtp, hours=1, experts=[INFRA]).messages == 0  # no news, no mail for a resolution
    c = facts.deviation("305", "major")
    send(engine, smtp, hours=2, experts=[INFRA])
    second = plain_part(smtp.mailbox.to(INFRA.address)[1].message)
    assert told(smtp, INFRA, facts, since=1) == [{c}]
    closing = second.split("=== برطرف‌شده از رایانامه پیشین ===")[1]
    assert subjects_in(closing) == {facts.subjects[b]} and facts.subjects[a] not in second
    facts.deviation("305", "major")
    send(engine, smtp, hours=3, experts=[INFRA])
    assert "برطرف‌شده از رایانامه پیشین" not in plain_part(smtp.mailbox.to(INFRA.address)[2].message)


def test_a_reopened_deviation_is_news_again(engine, facts, smtp):
    a = facts.deviation("305", "major")
    send(engine, smtp, experts=[INFRA])
    facts.change(a, status="resolved")
    facts.deviation("305", "major")
    send(engine, smtp, hours=1, experts=[INFRA])  # tells the resolution
    facts.change(a, status="open", resolved_on=None)
    send(engine, smtp, hours=2, experts=[INFRA])
    assert told(smtp, INFRA, facts)[2] == {a}
    assert "بازگشایی‌شده" in plain_part(smtp.mailbox.to(INFRA.address)[2].message)


def test_the_worst_go_first_and_the_rest_follow_in_the_next_digest(engine, facts, smtp):
    minor = facts.deviation("305", "major", county=3)
    worst = facts.deviation("305", "critical", county=2)
    facts.deviation("305", "major", county=1)
    send(engine, smtp, experts=[INFRA], max_per_digest=2)
    first = told(smtp, INFRA, facts)[0]
    assert worst in first and len(first) == 2
    assert "۱ انحراف دیگر در رایانامه‌های بعدی می‌آید" in plain_part(smtp.mailbox.to(INFRA.address)[0].message)
    send(engine, smtp, hours=1, experts=[INFRA], max_per_digest=2)
    assert len(told(smtp, INFRA, facts)[1]) == 1 and (told(smtp, INFRA, facts)[1] | first) >= {minor, worst}


def test_counties_and_agencies_are_ordered_worst_first(engine, facts):
    facts.deviation("305", "major", county=1)  # Ahvaz: major only
    facts.deviation("305", "critical", county=2)  # Dezful: a critical
    facts.deviation("220", "major", county=2)
    facts.deviation("305", "major", county=None)  # no county: last
    with engine.connect() as conn:
        digest = build_digest(conn, BOTH, alerts_config(), ROUTING, T0)
    assert [c.name for c in digest.counties] == ["دزفول", "اهواز", "نامشخص"]
    assert [a.code for a in digest.counties[0].agencies] == ["305", "220"]
    assert [i.severity for i in digest.items] == ["critical", "major", "major", "major"]
