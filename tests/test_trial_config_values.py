"""An operator's trial: values config.yaml accepted without a word, each now one line naming its key.

NaN thresholds passed the rules' order checks (NaN compares false to everything) and .inf passed
every lower bound; `true` was read as 1 where a number is asked; a backoff could start above its
ceiling; a key given twice kept the second silently (a second `routing:` block replaced the first);
agency codes that are one once read (305 and "305", ۳۰۵ and 305) kept one silently, and an empty
or non-numeric code routed nothing. Valid files — the shipped config.yaml, the demo's — still load
(tests/test_config.py, tests/test_demo.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from budgetwatch.cli import main
from budgetwatch.config import DATABASE_ENV, ConfigError, load_config

FINITE = "must be a finite number"
NOT_BOOLEAN = "must be a number, not yes/no"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (DATABASE_ENV, "BUDGETWATCH_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def problems(tmp_path: Path):
    """The problems of a config file of `text` (as written: YAML's .nan is not JSON's)."""

    def problems(text: str) -> list[str]:
        path = tmp_path / "config.yaml"
        path.write_text(f"data_dir: data\n{text}", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        return caught.value.problems

    return problems


@pytest.fixture
def loads(tmp_path: Path):
    def loads(text: str):
        path = tmp_path / "config.yaml"
        path.write_text(f"data_dir: data\n{text}", encoding="utf-8")
        return load_config(path).config

    return loads


# --- not-a-number and infinity ------------------------------------------------------------------


@pytest.mark.parametrize(("text", "key"), [
    ("reconcile:\n  rules:\n    spend_progress_gap: {major: .nan}\n", "reconcile.rules.spend_progress_gap.major"),
    ("reconcile:\n  rules:\n    progress_lag: {minor: .nan}\n", "reconcile.rules.progress_lag.minor"),
    ("reconcile:\n  rules:\n    progress_lag: {minor: .inf}\n", "reconcile.rules.progress_lag.minor"),
    ("reconcile:\n  rules:\n    spend_progress_gap: {major: 'nan'}\n", "reconcile.rules.spend_progress_gap.major"),
    ("sources:\n  nezarat4: {timeout_seconds: .inf}\n", "sources.nezarat4.timeout_seconds"),
    ("sources:\n  saba: {timeout_seconds: .nan}\n", "sources.saba.timeout_seconds"),
    ("sources:\n  saba: {rate_limit_per_second: 'Infinity'}\n", "sources.saba.rate_limit_per_second"),
    ("sources:\n  nezarat4: {max_retry_seconds: 'inf'}\n", "sources.nezarat4.max_retry_seconds"),
    ("alerts:\n  smtp: {timeout_seconds: .inf}\n", "alerts.smtp.timeout_seconds"),
    ("alerts:\n  retry: {max_wait_seconds: .inf}\n", "alerts.retry.max_wait_seconds"),
    ("schedule: {stop_timeout_seconds: -.inf}\n", "schedule.stop_timeout_seconds"),
])
def test_a_number_that_is_not_finite_is_refused_naming_its_key(problems, text, key):
    [line] = problems(text)
    assert line.startswith(f"{key} = ") and FINITE in line


def test_each_nan_threshold_of_the_trial_is_its_own_line(problems):
    lines = problems("reconcile:\n  rules:\n    spend_progress_gap: {major: .nan}\n    progress_lag: {minor: .nan}\n")
    assert sorted(line.split(" = ")[0] for line in lines) == ["reconcile.rules.progress_lag.minor",
                                                              "reconcile.rules.spend_progress_gap.major"]
    assert all(FINITE in line for line in lines)


# --- booleans where a number is asked -----------------------------------------------------------


@pytest.mark.parametrize(("text", "key"), [
    ("sources:\n  nezarat4: {concurrency: true}\n", "sources.nezarat4.concurrency"),
    ("sources:\n  saba: {timeout_seconds: true}\n", "sources.saba.timeout_seconds"),
    ("alerts:\n  smtp: {port: true}\n", "alerts.smtp.port"),
    ("alerts:\n  retry: {attempts_per_run: yes}\n", "alerts.retry.attempts_per_run"),
    ("reconcile: {report_due_days: true}\n", "reconcile.report_due_days"),
    ("schedule: {misfire_grace_seconds: true}\n", "schedule.misfire_grace_seconds"),
    ("reports: {service_days: true}\n", "reports.service_days"),
])
def test_a_boolean_where_a_number_is_asked_is_refused(problems, text, key):
    [line] = problems(text)
    assert line.startswith(f"{key} = True") and NOT_BOOLEAN in line


def test_false_where_a_number_is_asked_is_refused_too(problems):
    [line] = problems("alerts:\n  retry: {first_wait_seconds: false}\n")  # read as 0: no wait at all
    assert line.startswith("alerts.retry.first_wait_seconds = False") and NOT_BOOLEAN in line


def test_a_boolean_where_a_boolean_is_asked_still_reads(loads):
    config = loads("sources:\n  saba: {enabled: false, verify_tls: false}\nalerts: {enabled: false}\n")
    assert config.sources.saba.enabled is False and config.sources.saba.verify_tls is False


# --- pairs of keys in order -----------------------------------------------------------------------


def test_a_backoff_that_starts_above_its_ceiling_names_both_keys(problems):
    [line] = problems("sources:\n  saba: {backoff_initial_seconds: 120, backoff_max_seconds: 60}\n")
    assert "sources.saba.backoff_initial_seconds = 120" in line and "sources.saba.backoff_max_seconds = 60" in line


def test_an_alerts_first_wait_above_its_longest_names_both_keys(problems):
    [line] = problems("alerts:\n  retry: {first_wait_seconds: 1000}\n")  # max_wait_seconds stays 900
    assert "alerts.retry.first_wait_seconds = 1000" in line and "alerts.retry.max_wait_seconds = 900" in line


def test_a_backoff_whose_start_is_its_ceiling_is_fine(loads):
    config = loads("sources:\n  nezarat4: {backoff_initial_seconds: 60, backoff_max_seconds: 60}\n"
                   "alerts:\n  retry: {first_wait_seconds: 900, max_wait_seconds: 900}\n")
    assert config.sources.nezarat4.backoff_initial_seconds == 60 and config.alerts.retry.first_wait_seconds == 900


# --- a key given twice ----------------------------------------------------------------------------


def test_a_second_routing_block_is_refused_naming_the_key_and_both_lines(problems):
    [line] = problems("routing:\n  agencies: {'305': social}\nreports: {service_days: 3}\n"
                      "routing:\n  agencies: {'118': production}\n")
    # the file's line 1 is data_dir: the first routing is on line 2, the second on line 5
    assert line.startswith("line 5, column 1: ") and "'routing' is given twice (first on line 2)" in line


def test_a_key_given_twice_deep_down_is_refused(problems):
    [line] = problems("sources:\n  nezarat4:\n    concurrency: 2\n    timeout_seconds: 30\n    concurrency: 8\n")
    assert line.startswith("line 6, column 5: ") and "'concurrency' is given twice (first on line 4)" in line


def test_a_merged_mapping_may_still_be_overridden(loads):
    config = loads("sources:\n  nezarat4: &portal {timeout_seconds: 30, concurrency: 2}\n"
                   "  saba:\n    <<: *portal\n    concurrency: 3\n")
    assert (config.sources.saba.timeout_seconds, config.sources.saba.concurrency) == (30, 3)


# --- agency codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("agencies", "named"), [
    ("{305: social, '305': production}", "305 and '305' are one agency code (305)"),
    ("{'۳۰۵': social, 305: production}", "'۳۰۵' and 305 are one agency code (305)"),
    ("{'٣٠٥': social, '۳۰۵': social}", "'٣٠٥' and '۳۰۵' are one agency code (305)"),
    ("{'032': social, ' 032 ': production}", "'032' and ' 032 ' are one agency code (032)"),
    ("{'': social}", "'' is not an agency code"),
    ("{abc: social}", "'abc' is not an agency code"),
    ("{'3a5': social}", "'3a5' is not an agency code"),
])
def test_routing_refuses_codes_that_collide_or_are_no_codes(problems, agencies, named):
    [line] = problems(f"routing:\n  agencies: {agencies}\n")
    assert line.startswith("routing.agencies = ") and named in line


def test_routing_keeps_distinct_codes_with_their_leading_zeros(loads):
    config = loads("routing:\n  agencies: {'032': social, 32: production, '۳۰۵': infrastructure}\n")
    assert config.routing.agencies == {"032": "social", "32": "production", "305": "infrastructure"}


# --- at the command line: one line, exit 2, before anything runs ---------------------------------


@pytest.mark.parametrize("text", [
    "reconcile:\n  rules:\n    spend_progress_gap: {major: .nan}\n",
    "sources:\n  nezarat4: {concurrency: true}\n",
    "routing:\n  agencies: {'305': social}\nrouting:\n  agencies: {'118': social}\n",
    "routing:\n  agencies: {305: social, '305': production}\n",
])
def test_check_config_refuses_them_in_one_line_with_exit_code_2(tmp_path, capsys, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(f"data_dir: data\n{text}", encoding="utf-8")
    code = main(["--config", str(path), "check-config"])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "configuration OK" not in out and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"configuration error in {path}: ")
