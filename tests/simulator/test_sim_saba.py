"""SABA over real HTTP, endpoint by endpoint, against saba.md and examples/saba-*.json."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from simhelpers import EXAMPLES, ascii_digits, match_key

AGREEMENT_FIELDS = list(json.loads((EXAMPLES / "saba-agreements-page1.json").read_text())["items"][0])
OPERATION_FIELDS = list(json.loads((EXAMPLES / "saba-operations.json").read_text())["items"][0])
PERFORMANCE_FIELDS = list(json.loads((EXAMPLES / "saba-performance.json").read_text())["items"][0])


def test_token_success_has_the_example_shape(sim, saba):
    response = saba.authenticate()
    assert response.status_code == 200
    body = response.json()
    assert list(body) == list(json.loads((EXAMPLES / "saba-token.json").read_text()))
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert response.headers["content-type"].startswith("application/json")


def test_token_wrong_credentials_and_locked_account(saba):
    wrong = saba.authenticate(password="nope")
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_credentials"})
    locked = saba.authenticate(user="locked.user")
    assert (locked.status_code, locked.json()) == (423, {"error": "account_locked"})


def test_calls_need_a_bearer_token(saba):
    assert saba.get("/api/v1/agreements", fiscalYear=1405).status_code == 401
    saba.token = "not-a-token"
    assert saba.get("/api/v1/agreements", fiscalYear=1405).json() == {"error": "invalid_token"}


def test_token_expires_after_its_lifetime_on_the_injected_clock(sim, clock, saba):
    saba.authenticate()
    assert saba.get("/api/v1/agreements", fiscalYear=1405).status_code == 200
    clock.advance(sim.config.token_lifetime_seconds - 1)
    assert saba.get("/api/v1/agreements", fiscalYear=1405).status_code == 200
    clock.advance(1)
    response = saba.get("/api/v1/agreements", fiscalYear=1405)
    assert (response.status_code, response.json()) == (401, {"error": "token_expired"})
    saba.authenticate()
    assert saba.get("/api/v1/agreements", fiscalYear=1405).status_code == 200


def test_revoked_token_answers_token_expired(sim, saba):
    saba.authenticate()
    sim.revoke_tokens()
    assert saba.get("/api/v1/agreements", fiscalYear=1405).json() == {"error": "token_expired"}


def test_rate_limit_per_token_in_a_sliding_second(sim, clock, saba):
    saba.authenticate()
    limit = sim.config.rate_limit_per_second
    for _ in range(limit):
        assert saba.get("/api/v1/agreements", fiscalYear=1405, pageSize=1).status_code == 200
        clock.advance(0.05)
    limited = saba.get("/api/v1/agreements", fiscalYear=1405, pageSize=1)
    assert limited.status_code == 429
    assert limited.headers["retry-after"].isdigit() and int(limited.headers["retry-after"]) >= 1
    clock.advance(0.51)  # the first request of the window is now more than a second old
    assert saba.get("/api/v1/agreements", fiscalYear=1405, pageSize=1).status_code == 200
    assert saba.get("/api/v1/agreements", fiscalYear=1405, pageSize=1).status_code == 429
    other = type(saba)(sim)
    other.authenticate()
    assert other.get("/api/v1/agreements", fiscalYear=1405, pageSize=1).status_code == 200  # per token
    other.close()


def test_listing_parameters(sim, clock, saba):
    saba.authenticate()

    def get(**params):
        clock.advance(1)  # stay below the rate limit
        return saba.get("/api/v1/agreements", **params)

    world = sim.world
    year = world.epoch.current_year
    ids = [a.portal_id for a in world.agreement_rows(year)]
    assert get().status_code == 400  # fiscalYear is required
    assert get(fiscalYear="x").status_code == 400
    assert get(fiscalYear=year, pageSize=0).status_code == 400
    assert get(fiscalYear=year, pageSize=201).status_code == 400
    assert get(fiscalYear=year, page=0).status_code == 400
    body = get(fiscalYear=year).json()
    assert set(body) == {"items", "page", "pageSize", "totalCount"}
    assert (body["page"], body["pageSize"], body["totalCount"]) == (1, 50, len(ids))
    assert [i["id"] for i in body["items"]] == ids[:50]
    collected = []
    page = 1
    while True:
        items = get(fiscalYear=year, page=page, pageSize=7).json()["items"]
        if not items:
            break
        collected += [i["id"] for i in items]
        page += 1
    assert collected == ids == sorted(ids)
    assert get(fiscalYear=year, pageSize=200).json()["pageSize"] == 200
    assert get(fiscalYear=1390).json() == {"items": [], "page": 1, "pageSize": 50, "totalCount": 0}

    cut = sorted(a.modified_at for a in world.agreement_rows(year))[len(ids) // 2]
    since = cut.isoformat()
    body = get(fiscalYear=year, modifiedSince=since, pageSize=200).json()
    expected = [a.portal_id for a in world.agreement_rows(year) if a.modified_at >= cut]
    assert [i["id"] for i in body["items"]] == expected and body["totalCount"] == len(expected)
    assert all(datetime.fromisoformat(i["modifiedAt"]) >= cut for i in body["items"])
    utc = (cut - timedelta(seconds=0)).astimezone(tz=None).isoformat()
    assert get(fiscalYear=year, modifiedSince=utc, pageSize=200).json()["totalCount"] == len(expected)
    assert get(fiscalYear=year, modifiedSince="2026-01-01T00:00:00").status_code == 400  # no offset
    assert get(fiscalYear=year, modifiedSince="yesterday").status_code == 400


def _walk_numbers(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk_numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk_numbers(v, f"{path}[{i}]")
    else:
        yield path, value


NUMERIC = ("approved", "notified", "allocated", "spent", "quantity", "annualTarget", "unitCost", "id",
           "fiscalYear", "chapter", "quarter")


def test_every_agreement_operation_and_performance_matches_the_truth(sim, clock, saba):
    saba.authenticate()
    world = sim.world
    truth = {(t["agreement_no"], t["fiscal_year"]): t for t in world.truth_agreements()}
    seen = 0
    for year in world.years:
        clock.advance(1)
        items = saba.get("/api/v1/agreements", fiscalYear=year, pageSize=200).json()["items"]
        for item in items:
            assert list(item) == AGREEMENT_FIELDS
            for path, value in _walk_numbers(item):
                if path.rsplit(".", 1)[-1] in NUMERIC:
                    assert value is None or isinstance(value, (int, float)) and not isinstance(value, bool), path
            number = ascii_digits(item["agreementNo"])
            expected = truth[(number, year)]
            assert item["fiscalYear"] == year
            assert item["agency"]["code"] == expected["agency_code"]
            assert match_key(item["agency"]["name"]) == match_key(expected["agency_name"])
            if expected["county"] is None:
                assert item["county"] is None
            else:
                county = next(c for c in world.counties if c.code == item["county"]["code"])
                assert county.name == expected["county"]
                assert match_key(item["county"]["name"]) in {match_key(n) for n in (county.name, *county.variants)}
            assert item["program"]["code"] == expected["program_code"]
            assert match_key(item["program"]["title"]) == match_key(expected["program_title"])
            assert item["status"] == expected["status"].upper()
            assert [{"chapter": c["chapter"], **{k: _dec(c[k]) for k in ("approved", "notified", "allocated",
                                                                            "spent")}}
                    for c in item["credits"]] == expected["credits"]
            datetime.fromisoformat(item["modifiedAt"])
            clock.advance(1)
            operations = saba.get(f"/api/v1/agreements/{item['id']}/operations").json()["items"]
            performance = saba.get(f"/api/v1/agreements/{item['id']}/performance").json()["items"]
            assert [op["code"] for op in operations] == [op["code"] for op in expected["operations"]]
            for op, want in zip(operations, expected["operations"]):
                assert list(op) == OPERATION_FIELDS
                assert match_key(op["title"]) == match_key(want["title"])
                assert [_dec(t) for t in op["quarterlyTargets"]] == want["quarterly_targets"]
                assert _dec(op["annualTarget"]) == sum(want["quarterly_targets"])
                assert _dec(op["unitCost"]) == want["unit_cost"]
                got = [p for p in performance if p["operationCode"] == op["code"]]
                assert [
                    {"quarter": p["quarter"], "quantity": _dec(p["quantity"]), "spent": _dec(p["spent"]),
                     "reported_on": _gregorian(p["reportedAt"]),
                     "comptroller_status": p["comptroller"]["status"].lower(),
                     "decided_on": _gregorian(p["comptroller"]["decidedAt"]),
                     "remarks": match_key(p["remarks"]) or None}
                    for p in got
                ] == [dict(p, remarks=p["remarks"] and match_key(p["remarks"])) for p in want["performance"]]
            for p in performance:
                assert list(p) == PERFORMANCE_FIELDS
            seen += 1
    assert seen == len(truth)


def _dec(value):
    return None if value is None else Decimal(str(value))


def _gregorian(text):
    if text is None:
        return None
    import jdatetime

    y, m, d = (int(x) for x in text.split("/"))
    return jdatetime.date(y, m, d).togregorian().isoformat()


@pytest.mark.parametrize("path", ["operations", "performance"])
def test_unknown_agreement_id_is_404(saba, path):
    saba.authenticate()
    response = saba.get(f"/api/v1/agreements/1/{path}")
    assert (response.status_code, response.json()) == (404, {"error": "not_found"})
    assert saba.get(f"/api/v1/agreements/abc/{path}").status_code == 404


def test_removed_agreement_is_404(sim, saba):
    saba.authenticate()
    agreement = next(a for a in sim.world.agreements.values() if a.case is None)
    assert sim.world.remove_agreement(agreement.agreement_no, agreement.fiscal_year)
    assert saba.get(f"/api/v1/agreements/{agreement.portal_id}/operations").status_code == 404
