"""config.yaml: one file, validated before anything runs.

Each layer owns the model of its section (connectors.settings: ``sources``; reconcile.settings:
``reconcile`` and ``routing``; alerts.settings: ``alerts`` and ``experts``; service.settings:
``schedule``); this module composes them into ``Config`` and loads the file. Defaults live in code; the shipped config.yaml documents every key. An unknown key is an error
naming its path (a misspelt threshold must not silently fall back to its default). Errors are
reported as one line per problem: the key's path, the value found, and what is expected.

Credentials never live in the file: a source names the environment variable (or a file outside the
repository) that holds its password, and the password is read only when a connector needs it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from alerts.settings import DURATION_EXPECTED, AlertsConfig, Expert, Experts, SmtpConfig
from connectors.settings import PortalSettings, SourcesConfig, portal_settings
from foundation.settings import ConfigError, Strict
from foundation.vocabulary import Source
from reconcile.settings import ReconcileConfig, RoutingConfig, RulesConfig
from reports.settings import ReportsConfig
from service.settings import ScheduleConfig

# the sections' models, re-exported for callers that compose or inspect a whole configuration
__all__ = [
    "AlertsConfig", "Config", "ConfigError", "DatabaseConfig", "Expert", "LoadedConfig", "ReconcileConfig",
    "RoutingConfig", "RulesConfig", "ScheduleConfig", "SmtpConfig", "SourcesConfig", "load_config", "parse_config",
]

CONFIG_ENV = "BUDGETWATCH_CONFIG"
DATABASE_ENV = "BUDGETWATCH_DATABASE_URL"
DEFAULT_CONFIG_FILE = "config.yaml"


class Config(Strict):
    data_dir: Path = Path("data")
    database: DatabaseConfig = Field(default_factory=lambda: DatabaseConfig())
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    experts: Experts = Field(default_factory=list)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)

    @property
    def database_url(self) -> str:
        """The store's URL: BUDGETWATCH_DATABASE_URL, else database.url, else SQLite in data_dir."""
        override = os.environ.get(DATABASE_ENV)
        if override:
            if not override.startswith(("sqlite", "postgresql")):
                from store.db import safe_url

                raise ConfigError(DATABASE_ENV, [f"{DATABASE_ENV} = {safe_url(override)!r}: must be a sqlite:/// "
                                                 "or postgresql+psycopg:// URL"])
            return override
        if self.database.url:
            return self.database.url
        self.data_dir.mkdir(parents=True, exist_ok=True)  # the embedded default: its folder is ours to make
        return f"sqlite:///{(self.data_dir / 'budgetwatch.db').as_posix()}"

    def portal_settings(self, source: Source) -> PortalSettings:
        """What a connector needs for `source`, with the password read now."""
        return portal_settings(self.sources, source)


class DatabaseConfig(Strict):
    url: str | None = None  # None: sqlite:///<data_dir>/budgetwatch.db

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value


Config.model_rebuild()


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: str  # where it came from ("<defaults>" when no file)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


MISSING_KEY = "missing key "  # a model check's ValueError("missing key sender: alerts are enabled")
_DURATION_ERRORS = ("time_delta_parsing", "time_delta_type")


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if loc.endswith("url") and isinstance(err.get("input"), str):
            from store.db import safe_url  # a URL may carry a password: never echo it

            err = {**err, "input": safe_url(err["input"])}
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key (is it misspelt?)")
        elif err["type"] == "missing":
            lines.append(f"{loc}: required key is missing")
        elif err["type"] in _DURATION_ERRORS:
            lines.append(f"{loc} = {_describe(err.get('input'))}: {DURATION_EXPECTED}")
        elif err["type"] == "value_error" and message.startswith(MISSING_KEY):
            # a section's check that one of its keys must be set (alerts.sender when enabled): name the key
            key, _, why = message.removeprefix(MISSING_KEY).partition(": ")
            lines.append(f"{loc}.{key}: required key is missing ({why})")
        else:
            lines.append(f"{loc} = {_describe(err.get('input'))}: {message}")
    return lines


def parse_config(data: Any, path: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, ["the file must hold a mapping of sections (database:, sources:, ...)"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, _problems(exc)) from None


def load_config(path: str | os.PathLike[str] | None = None) -> LoadedConfig:
    """Load and validate: --config, else $BUDGETWATCH_CONFIG, else ./config.yaml, else defaults."""
    explicit = path or os.environ.get(CONFIG_ENV)
    candidate = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)
    if not candidate.exists():
        if explicit:
            raise ConfigError(str(candidate), ["file not found"])
        return LoadedConfig(parse_config({}, "<defaults>"), "<defaults>")
    try:
        data = read_yaml(_read_text(candidate))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(str(candidate), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    config = parse_config(data, str(candidate))
    # relative paths in the file are relative to the file, not to where the command runs
    if not config.data_dir.is_absolute():
        config = config.model_copy(update={"data_dir": (candidate.parent / config.data_dir)})
    return LoadedConfig(_place_password_files(config, candidate), str(candidate))


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, except that a number is decimal or text: an agency code written 032 is
    '032', not YAML 1.1's octal 26 (a new user's routing of agency 032 went to agency 26 — to no
    expert — without a word); 0x1F, 0b101 and 1:30 stay text too."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789"))


def read_yaml(text: str) -> Any:
    """config.yaml's text as budgetwatch reads it (:class:`_Loader`)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader


def _read_text(candidate: Path) -> str:
    """The file's text; a folder, an unreadable file or one not in UTF-8 is a ConfigError naming it."""
    if candidate.is_dir():
        raise ConfigError(str(candidate), ["is a folder; give the path of a config file (config.yaml)"])
    try:
        raw = candidate.read_bytes()
    except OSError as exc:
        raise ConfigError(str(candidate), [f"cannot read ({exc.strerror or exc})"]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # where the first bad byte is, as a YAML error says it: an editor can go there
        line = raw.count(b"\n", 0, exc.start) + 1
        column = len(raw[raw.rfind(b"\n", 0, exc.start) + 1:exc.start].decode("utf-8")) + 1  # in characters
        # Windows editors' "Unicode" is UTF-16, which starts with its byte order mark
        utf16 = "; it looks like UTF-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else ""
        problem = f"line {line}, column {column}: not UTF-8 text (byte 0x{raw[exc.start]:02x}{utf16})"
        raise ConfigError(str(candidate), [f"{problem}; save the file as UTF-8"]) from None


REPOSITORY = Path(__file__).resolve().parents[1]  # the budgetwatch checkout (pyproject.toml lives here)


def _place_password_files(config: Config, candidate: Path) -> Config:
    """A relative file of the configuration (the portals' and the mail server's password_file, the
    mail server's ca_file) is relative to the config file's folder, not to where a command runs (a
    service runs in its own); a password file inside the budgetwatch repository is refused (a secret
    there is one `git add` away from being published)."""
    problems: list[str] = []

    def placed(path: Path, key: str, *, secret: bool) -> Path:
        path = path.expanduser()
        if not path.is_absolute():
            path = candidate.parent / path
        if secret and (REPOSITORY / "pyproject.toml").is_file() and path.resolve().is_relative_to(REPOSITORY):
            problems.append(f"{key}: {path} is inside the budgetwatch repository; "
                            "keep secrets outside it (e.g. /etc/budgetwatch/)")
        return path

    sources = {}
    for name in ("nezarat4", "saba"):
        src = getattr(config.sources, name)
        if src.password_file is not None:
            path = placed(src.password_file, f"sources.{name}.password_file", secret=True)
            sources[name] = src.model_copy(update={"password_file": path})
    smtp = config.alerts.smtp
    mail = {key: placed(getattr(smtp, key), f"alerts.smtp.{key}", secret=key == "password_file")
            for key in ("password_file", "ca_file") if getattr(smtp, key) is not None}
    if problems:
        raise ConfigError(str(candidate), problems)
    update: dict[str, Any] = {}
    if sources:
        update["sources"] = config.sources.model_copy(update=sources)
    if mail:
        update["alerts"] = config.alerts.model_copy(update={"smtp": smtp.model_copy(update=mail)})
    return config.model_copy(update=update) if update else config
