"""config.yaml: the shipped file, validation messages, overrides and where passwords come from.

Issue 2: one file, validated at start; an unknown key or a wrong value is a one-line problem naming
the key's dotted path, the value found and what is expected; BUDGETWATCH_DATABASE_URL overrides the
store; credentials come from the environment or a file outside the repository and are never shown.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from budgetwatch.config import (
    DATABASE_ENV,
    Config,
    ConfigError,
    load_config,
    read_yaml,
    parse_config,
)
from connectors.settings import PortalSettings

SHIPPED = Path(__file__).resolve().parents[1] / "config.yaml"
PASSWORD = "pa$$-Wörd-1405"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (DATABASE_ENV, "BUDGETWATCH_CONFIG", "NEZARAT4_PASSWORD", "SABA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def problems_of(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped file -------------------------------------------------------------------------


def test_shipped_config_equals_code_defaults_everywhere() -> None:
    parsed = parse_config(read_yaml(SHIPPED.read_text(encoding="utf-8")), str(SHIPPED))  # as budgetwatch reads it
    # No key differs on purpose: the file documents the defaults, so any drift is a mistake.
    assert parsed.model_dump() == Config().model_dump()


def test_loading_the_shipped_config_only_anchors_data_dir_to_the_file() -> None:
    loaded = load_config(SHIPPED)
    assert loaded.path == str(SHIPPED)
    assert loaded.config.data_dir == SHIPPED.parent / "data"
    assert loaded.config.model_dump(exclude={"data_dir"}) == Config().model_dump(exclude={"data_dir"})


def _missing_keys(model: type[BaseModel], written: dict, prefix: str = "") -> list[str]:
    missing = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if name not in written:
            missing.append(path)
            continue
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            missing += _missing_keys(annotation, written[name] or {}, f"{path}.")
    return missing


def test_shipped_config_documents_every_key() -> None:
    written = read_yaml(SHIPPED.read_text(encoding="utf-8"))
    assert _missing_keys(Config, written) == []


# --- unknown keys -----------------------------------------------------------------------------


def test_unknown_top_level_key_names_it() -> None:
    assert problems_of({"databse": {"url": "sqlite:///x.db"}}) == ["databse: unknown key (is it misspelt?)"]


def test_unknown_key_in_a_rule_names_its_dotted_path() -> None:
    problems = problems_of({"reconcile": {"rules": {"progress_lag": {"minr": 3}}}})
    assert problems == ["reconcile.rules.progress_lag.minr: unknown key (is it misspelt?)"]


def test_unknown_key_in_a_source_names_its_dotted_path() -> None:
    problems = problems_of({"sources": {"saba": {"pagesize": 100}}})
    assert problems == ["sources.saba.pagesize: unknown key (is it misspelt?)"]


def test_every_problem_is_reported_not_only_the_first() -> None:
    problems = problems_of({"sources": {"nezarat4": {"concurrency": 12, "timeout_seconds": -1}}})
    assert [p.split(" ")[0] for p in problems] == ["sources.nezarat4.concurrency", "sources.nezarat4.timeout_seconds"]


# --- wrong values: key, value, expectation ----------------------------------------------------


def one_problem(data: Any) -> str:
    problems = problems_of(data)
    assert len(problems) == 1, problems
    assert "\n" not in problems[0]
    return problems[0]


def test_concurrency_above_the_contract_ceiling() -> None:
    line = one_problem({"sources": {"nezarat4": {"concurrency": 12}}})
    assert line.startswith("sources.nezarat4.concurrency = 12: ")
    assert "less than or equal to 8" in line


@pytest.mark.parametrize(("rule", "values", "said"), [
    ("progress_lag", {"minor": 20}, "minor 20 and major 15 are inverted: the thresholds go minor ≤ major ≤ critical"),
    ("completion_overdue", {"critical_years": 1}, "major_years 2 and critical_years 1 are inverted"),
    ("operation_shortfall", {"major": 0.9}, "minor 0.7 and major 0.9 are inverted: the thresholds go threshold ≥ minor ≥ major"),
])
def test_inverted_severity_thresholds_are_refused_naming_the_rule(rule: str, values: dict, said: str) -> None:
    # found by a new user: minor above major was accepted, and one severity could never be given
    line = one_problem({"reconcile": {"rules": {rule: values}}})
    assert line.startswith(f"reconcile.rules.{rule} = ") and said in line, line


def test_equal_severity_thresholds_are_allowed() -> None:
    parse_config({"reconcile": {"rules": {"progress_lag": {"minor": 15, "major": 15}}}})


def test_negative_timeout() -> None:
    line = one_problem({"sources": {"saba": {"timeout_seconds": -5}}})
    assert line.startswith("sources.saba.timeout_seconds = -5: ")
    assert "greater than 0" in line


def test_base_url_without_http_scheme() -> None:
    line = one_problem({"sources": {"saba": {"base_url": "ftp://saba.mpong.ir"}}})
    assert line == "sources.saba.base_url = 'ftp://saba.mpong.ir': must start with https:// (or http:// for a local simulator)"


def test_database_url_of_another_engine() -> None:
    line = one_problem({"database": {"url": "mysql://db/budgetwatch"}})
    assert line.startswith("database.url = 'mysql://db/budgetwatch': ")
    assert "sqlite:/// or postgresql+psycopg://" in line


def test_database_url_error_does_not_echo_a_password() -> None:
    line = one_problem({"database": {"url": "mysql://bw:hunter2secret@db/budgetwatch"}})
    assert line.startswith("database.url = ")
    assert "hunter2secret" not in line


def test_fiscal_year_that_is_not_jalali() -> None:
    line = one_problem({"sources": {"nezarat4": {"fiscal_years": [2026]}}})
    assert line.startswith("sources.nezarat4.fiscal_years = [2026]: ")
    assert "not a Jalali fiscal year" in line


def test_routing_to_an_unknown_group() -> None:
    line = one_problem({"routing": {"agencies": {"305": "health"}}})
    assert line.startswith("routing.agencies.305 = 'health': ")
    for group in ("social", "infrastructure", "production", "consolidation"):
        assert group in line


def test_expert_with_a_bad_email() -> None:
    line = one_problem({"experts": [{"name": "کارشناس", "email": "not-an-address", "group": "social"}]})
    assert line.startswith("experts.0.email = 'not-an-address': ")
    assert "email" in line.split(": ", 1)[1]


def test_expert_without_a_group_is_a_missing_key() -> None:
    assert one_problem({"experts": [{"name": "کارشناس", "email": "a@mpo-kz.ir"}]}) == "experts.0.groups: required key is missing"


def test_cron_with_four_fields() -> None:
    line = one_problem({"schedule": {"sync": "0 2 * *"}})
    assert line.startswith("schedule.sync = '0 2 * *': ")
    assert "5 fields" in line


def test_alerts_enabled_without_a_sender() -> None:
    line = one_problem({"alerts": {"enabled": True}})
    assert line == "alerts.sender: required key is missing (alerts are enabled)"  # the key, not the block


def test_min_severity_outside_the_scale() -> None:
    line = one_problem({"alerts": {"min_severity": "high"}})
    assert line.startswith("alerts.min_severity = 'high': ")
    assert "'minor', 'major' or 'critical'" in line


def test_as_of_in_jalali_with_persian_digits() -> None:
    config = parse_config({"reconcile": {"as_of": "۱۴۰۵/۰۹/۰۲"}})
    assert config.reconcile.as_of == date(2026, 11, 23)


def test_as_of_in_iso() -> None:
    assert parse_config({"reconcile": {"as_of": "2026-11-23"}}).reconcile.as_of == date(2026, 11, 23)


def test_as_of_that_is_no_day() -> None:
    line = one_problem({"reconcile": {"as_of": "1404/12/30"}})  # 1404 is not a leap year
    assert line.startswith("reconcile.as_of = '1404/12/30': ")


@pytest.mark.parametrize("value", ["forever", "1w", "", None, [2], True, float("inf"), 1e20, "99999999999d"])
def test_a_duration_that_is_no_duration_names_the_key_and_the_forms(value: Any) -> None:
    # found by a new user: `give_up_after: forever` got pydantic's "invalid character in hour"
    line = one_problem({"alerts": {"give_up_after": value}})
    assert line == (f"alerts.give_up_after = {value!r}: "
                    "must be a duration such as 2d, 36h or 90m, or a number of seconds")


def test_a_duration_of_zero_says_it_must_be_positive() -> None:
    line = one_problem({"alerts": {"give_up_after": "0d"}})
    assert line == "alerts.give_up_after = '0d': must be a positive duration such as 2d, 36h or 90m"


def test_file_that_is_not_a_mapping() -> None:
    assert problems_of(["database"]) == ["the file must hold a mapping of sections (database:, sources:, ...)"]


def test_invalid_yaml_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "database:\n  url: sqlite:///x.db\nsources: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.path == str(path)
    [line] = caught.value.problems
    assert line.startswith("line 4, column 1: not valid YAML")


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nowhere.yaml")
    assert caught.value.problems == ["file not found"]
    assert str(tmp_path / "nowhere.yaml") in str(caught.value)


def test_no_file_at_all_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_config()
    assert loaded.path == "<defaults>"
    assert loaded.config == Config()


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path / "config.yaml", "# nothing set\n"))
    assert loaded.config.model_dump(exclude={"data_dir"}) == Config().model_dump(exclude={"data_dir"})


# --- normalisation, overrides, paths ----------------------------------------------------------


def test_an_agency_code_with_a_leading_zero_is_that_code_not_an_octal_number(tmp_path: Path) -> None:
    # found by a new user: `032: social` was YAML 1.1's octal 26, and agency 032's deviations went
    # to no expert, without a word
    path = write(tmp_path / "c.yaml", "routing:\n  agencies:\n    032: social\n    118: production\n"
                                      "reconcile:\n  rules:\n    progress_lag:\n      minor: 5\n      major: 15.5\n")
    config = load_config(path).config
    assert config.routing.agencies == {"032": "social", "118": "production"}
    assert config.reconcile.rules.progress_lag.major == 15.5 and config.reconcile.rules.progress_lag.minor == 5


def test_routing_agency_codes_with_persian_digits_are_ascii() -> None:
    config = parse_config({"routing": {"agencies": {"۳۰۵": "social", " ١١٨ ": "production", 402: "infrastructure"}}})
    assert config.routing.agencies == {"305": "social", "118": "production", "402": "infrastructure"}


def test_database_env_overrides_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config({"database": {"url": "sqlite:////srv/budgetwatch.db"}})
    assert config.database_url == "sqlite:////srv/budgetwatch.db"
    monkeypatch.setenv(DATABASE_ENV, "postgresql+psycopg://budgetwatch@dbhost/budgetwatch")
    assert config.database_url == "postgresql+psycopg://budgetwatch@dbhost/budgetwatch"


def test_default_store_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path / "config.yaml", "data_dir: state\n"))
    assert loaded.config.database_url == f"sqlite:///{(tmp_path / 'state' / 'budgetwatch.db').as_posix()}"


def test_data_dir_is_relative_to_the_file_not_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "elsewhere").mkdir()
    path = write(tmp_path / "etc" / "budgetwatch.yaml", "data_dir: ../var\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_config(path).config.data_dir.resolve() == (tmp_path / "var").resolve()


def test_the_mail_servers_files_are_relative_to_the_config_file_not_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # review: alerts.smtp.password_file and ca_file were read from where the command ran — a service
    # in its own working folder refused to start over a file check-config (run beside it) called ready
    (tmp_path / "etc").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "etc" / "smtp.pw").write_text("a mail secret\n", encoding="utf-8")
    path = write(tmp_path / "etc" / "budgetwatch.yaml",
                 "alerts:\n  smtp:\n    username: bw\n    password_env: null\n    password_file: smtp.pw\n"
                 "    ca_file: ca.pem\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    smtp = load_config(path).config.alerts.smtp
    assert smtp.password_file == tmp_path / "etc" / "smtp.pw"
    assert smtp.ca_file == tmp_path / "etc" / "ca.pem"
    assert not [p for p in smtp.setup_problems() if "password_file" in p]


def test_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", f"data_dir: {tmp_path / 'abs'}\n")
    assert load_config(path).config.data_dir == tmp_path / "abs"


def test_budgetwatch_config_env_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "other.yaml", "schedule:\n  timezone: UTC\n")
    monkeypatch.setenv("BUDGETWATCH_CONFIG", str(path))
    loaded = load_config()
    assert loaded.path == str(path)
    assert loaded.config.schedule.timezone == "UTC"


def test_explicit_path_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDGETWATCH_CONFIG", str(tmp_path / "nowhere.yaml"))
    path = write(tmp_path / "mine.yaml", "schedule:\n  timezone: UTC\n")
    assert load_config(path).path == str(path)


# --- passwords --------------------------------------------------------------------------------


def test_password_from_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEZARAT4_PASSWORD", PASSWORD)
    settings = Config().portal_settings("nezarat4")
    assert settings.password.get_secret_value() == PASSWORD


def test_password_from_file_outside_the_repo(tmp_path: Path) -> None:
    secret = write(tmp_path / "saba.pw", PASSWORD + "\n")
    config = parse_config({"sources": {"saba": {"password_env": None, "password_file": str(secret)}}})
    assert config.portal_settings("saba").password.get_secret_value() == PASSWORD


def test_password_file_is_used_when_its_env_var_is_unset(tmp_path: Path) -> None:
    secret = write(tmp_path / "saba.pw", PASSWORD)
    config = parse_config({"sources": {"saba": {"password_file": str(secret)}}})  # password_env stays SABA_PASSWORD
    assert config.portal_settings("saba").password.get_secret_value() == PASSWORD


def test_missing_password_variable_names_key_and_variable_not_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SABA_PASSWORD", PASSWORD)  # a password is around, just not nezarat4's
    with pytest.raises(ConfigError) as caught:
        Config().portal_settings("nezarat4")
    [line] = caught.value.problems
    assert "sources.nezarat4.password_env" in line
    assert "NEZARAT4_PASSWORD" in line
    assert PASSWORD not in str(caught.value)


def test_unreadable_password_file_names_the_key(tmp_path: Path) -> None:
    config = parse_config({"sources": {"saba": {"password_env": None, "password_file": str(tmp_path / "nope.pw")}}})
    with pytest.raises(ConfigError) as caught:
        config.portal_settings("saba")
    [line] = caught.value.problems
    assert line.startswith("sources.saba.password_file: cannot read ")


def test_source_without_any_password_setting() -> None:
    config = parse_config({"sources": {"saba": {"password_env": None}}})
    with pytest.raises(ConfigError) as caught:
        config.portal_settings("saba")
    assert caught.value.problems == ["sources.saba: set password_env or password_file for the password"]


def test_portal_settings_never_show_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SABA_PASSWORD", PASSWORD)
    settings = Config().portal_settings("saba")
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert PASSWORD not in f"{settings.password}"
    assert PASSWORD not in repr(settings.password)
    assert settings.page_size == 200 and settings.rate_limit_per_second == 8.0


def test_portal_settings_carry_the_configured_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEZARAT4_PASSWORD", PASSWORD)
    config = parse_config({"sources": {"nezarat4": {"concurrency": 2, "timeout_seconds": 9, "page_pause_seconds": 0}}})
    settings = config.portal_settings("nezarat4")
    assert (settings.concurrency, settings.timeout_seconds, settings.page_pause_seconds) == (2, 9.0, 0.0)


def test_secret_str_in_a_formatted_message_is_masked() -> None:
    settings = PortalSettings(base_url="https://x", username="u", password=SecretStr(PASSWORD))
    assert PASSWORD not in f"connecting with {settings!r} / {settings}"


@pytest.mark.parametrize("section", [("sources", "nezarat4"), ("sources", "saba"), ("alerts", "smtp")])
def test_a_password_file_alone_is_the_one_place_the_password_is_read(section, tmp_path, monkeypatch):
    # an operator's trial: with only password_file set, the variable's default name was still read
    # first, so a stray NEZARAT4_PASSWORD overrode the file and check-config named the variable
    outer, inner = section
    secret = tmp_path / "pw"
    secret.write_text("from-the-file\n", encoding="utf-8")
    config = parse_config({outer: {inner: {"password_file": str(secret)}}})
    part = getattr(getattr(config, outer), inner)
    assert part.password_env is None
    monkeypatch.setenv({"nezarat4": "NEZARAT4_PASSWORD", "saba": "SABA_PASSWORD",
                        "smtp": "BUDGETWATCH_SMTP_PASSWORD"}[inner], "stray")
    read = part.password(inner) if outer == "sources" else part.password()
    assert read.get_secret_value() == "from-the-file"


def test_a_password_variable_and_file_both_set_is_refused_naming_the_file():
    problems = problems_of({"sources": {"saba": {"password_env": "SABA_PASSWORD", "password_file": "/etc/saba"}}})
    assert problems == ["sources.saba.password_file = '/etc/saba': password_env (SABA_PASSWORD) is set too: "
                        "keep one and empty the other (with both, the variable would be read and the file never)"]
    assert parse_config({"sources": {"saba": {"password_env": None, "password_file": "/etc/saba"}}})


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_password_key_left_blank_is_not_set(blank):
    # a review: `password_file: ""` was the path "." and refused as "both set"
    config = parse_config({"sources": {"nezarat4": {"password_env": "NEZARAT4_PASSWORD", "password_file": blank}},
                           "alerts": {"smtp": {"password_file": blank}}})
    assert config.sources.nezarat4.password_file is None and config.alerts.smtp.password_file is None
    assert config.sources.nezarat4.password_env == "NEZARAT4_PASSWORD"
