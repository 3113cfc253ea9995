"""config.yaml: one file, validated before anything runs.

Each layer owns the model of its section (connectors.settings: ``sources``; reconcile.settings:
``reconcile`` and ``routing``; alerts.settings: ``alerts`` and ``experts``; service.settings:
``schedule``); this module composes them into ``Config`` and loads the file. Defaults live in code; the shipped config.yaml documents every key. An unknown key is an error
naming its path (a misspelt threshold must not silently fall back to its default); so are a key
given twice, a number that is not finite (.nan, .inf), yes/no where a number is asked, and a
data_dir that cannot be a folder. Errors are reported as one line per problem: the key's path, the
value found, and what is expected. What is allowed but likely a mistake is a WARNING line, and the
command runs: with alerts on, a group routing gives agencies to that no expert belongs to (its
agencies' deviations are e-mailed to no one; a group may be read in the console only).

Credentials never live in the file: a source names the environment variable (or a file outside the
repository) that holds its password, and the password is read only when a connector needs it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from alerts.settings import (
    DURATION_EXPECTED,
    AlertsConfig,
    Expert,
    Experts,
    SmtpConfig,
    uncovered_groups,
    uncovered_line,
)
from connectors.settings import PortalSettings, SourcesConfig, portal_settings
from foundation.settings import ConfigError, Strict
from foundation.vocabulary import Source
from reconcile.settings import AS_WRITTEN, ReconcileConfig, RoutingConfig, RulesConfig
from reports.settings import ReportsConfig
from service.settings import ScheduleConfig

# the sections' models, re-exported for callers that compose or inspect a whole configuration
__all__ = [
    "AlertsConfig", "Config", "ConfigError", "DatabaseConfig", "Expert", "LoadedConfig", "ReconcileConfig",
    "RoutingConfig", "RulesConfig", "ScheduleConfig", "SmtpConfig", "SourcesConfig", "load_config", "parse_config",
]

log = logging.getLogger(__name__)

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
            if (why := unreadable_url(override)) is not None:
                from store.db import safe_url

                raise ConfigError(DATABASE_ENV, [f"{DATABASE_ENV} = {safe_url(override)!r}: {why}"])
            return override
        if self.database.url:
            return self.database.url
        try:  # the embedded default: its folder is ours to make
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # what only trying tells (a folder under /proc, a read-only file system; for root every
            # folder looks writable), said as the key it is about, not as a FileExistsError (a trial)
            raise ConfigError("config", [_data_dir_line(self.data_dir, exc)]) from None
        return f"sqlite:///{(self.data_dir / 'budgetwatch.db').as_posix()}"

    @property
    def uses_data_dir_store(self) -> bool:
        """Whether the store is the embedded default, SQLite in data_dir (no URL set anywhere)."""
        return not os.environ.get(DATABASE_ENV) and not self.database.url

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
        if value and (why := unreadable_url(value)) is not None:
            raise ValueError(why)
        return value


def unreadable_url(url: str) -> str | None:
    """Why the store's URL cannot be read as a URL (an unclosed [ of an IPv6 address, a port that is
    no number), or None. Said without the parser's own words, which may quote the URL and so its
    password (a trial: a raw ValueError, exit 1)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except (ArgumentError, ValueError):
        return ("cannot be read as a URL (postgresql+psycopg://USER@HOST:PORT/DATABASE or sqlite:///PATH; "
                "an IPv6 host in [ ], a port in digits, and @ : / [ ] in a user name or password "
                "percent-encoded, e.g. @ as %40)")
    return None


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


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    """Each of pydantic's errors as (the key's dotted path, its one line)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if loc.endswith("url") and isinstance(err.get("input"), str):
            from store.db import safe_url  # a URL may carry a password: never echo it

            err = {**err, "input": safe_url(err["input"])}
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            lines.append((loc, f"{loc}: unknown key (is it misspelt?)"))
        elif err["type"] == "missing":
            lines.append((loc, f"{loc}: required key is missing"))
        elif err["type"] in _DURATION_ERRORS:
            lines.append((loc, f"{loc} = {_describe(err.get('input'))}: {DURATION_EXPECTED}"))
        elif err["type"] == "value_error" and message.startswith(MISSING_KEY):
            # a section's check that one of its keys must be set (alerts.sender when enabled): name the key
            key, _, why = message.removeprefix(MISSING_KEY).partition(": ")
            lines.append((f"{loc}.{key}", f"{loc}.{key}: required key is missing ({why})"))
        else:
            lines.append((loc, f"{loc} = {_describe(err.get('input'))}: {message}"))
    return lines


NOT_FINITE = "must be a finite number (.nan and .inf are no setting's value)"
NOT_A_BOOLEAN = "must be a number, not yes/no (true would be read as 1, false as 0)"


def _not_finite_as_written(data: Any, loc: str = "") -> list[tuple[str, str]]:
    """YAML's .nan and .inf wherever they are written: no setting holds one. Those of the number
    settings are found by :func:`_numbers_as_written` before the models see them; this is the net
    under every other key."""
    found: list[tuple[str, str]] = []
    if isinstance(data, float) and not math.isfinite(data):
        found.append((loc, f"{loc} = {data}: {NOT_FINITE}"))
    elif isinstance(data, dict):
        for key, value in data.items():
            found += _not_finite_as_written(value, f"{loc}.{key}" if loc else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _not_finite_as_written(value, f"{loc}.{index}")
    return found


_NUMBERS = (int, float, Decimal)


def _numbers_as_written(model: type[BaseModel], data: Any, loc: str = "") -> list[tuple[str, str]]:
    """What pydantic would accept for a number and a setting must not hold, found from the models'
    field types and the data as written, before any model checks it: a boolean (pydantic reads
    `true` as 1: `concurrency: true` ran one request at a time without a word, a trial) and a number
    that is not finite, as YAML writes it (.nan, .inf) or as text pydantic reads ("nan", "inf"):
    NaN compares false to everything, so inverted thresholds passed the rules' order check, and
    lower bounds let .inf through (`timeout_seconds: .inf`, a request that never times out). Every
    section at once, whichever layer owns it."""
    found: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        return found
    for name, field in model.model_fields.items():
        if name in data:
            found += _value_as_written(field.annotation, data[name], f"{loc}.{name}" if loc else name)
    return found


def _value_as_written(kind: Any, value: Any, loc: str) -> list[tuple[str, str]]:
    if get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    origin, args = get_origin(kind), get_args(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return _numbers_as_written(kind, value, loc)
    if origin is list and args and isinstance(value, list):
        return [line for index, item in enumerate(value) for line in _value_as_written(args[0], item, f"{loc}.{index}")]
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return [line for key, item in value.items() for line in _value_as_written(args[1], item, f"{loc}.{key}")]
    kinds = [k for k in (args if origin in (Union, UnionType) else (kind,)) if k is not type(None)]
    if not kinds or not all(isinstance(k, type) and issubclass(k, _NUMBERS) and k is not bool for k in kinds):
        return []
    if isinstance(value, bool):
        return [(loc, f"{loc} = {value}: {NOT_A_BOOLEAN}")]
    if isinstance(value, (float, str)) and any(k is not int for k in kinds):
        try:
            number = float(value)
        except ValueError:
            return []  # not a number at all: the model says so
        if not math.isfinite(number):
            return [(loc, f"{loc} = {_describe(value)}: {NOT_FINITE}")]
    return []


def _in_order(config: Config) -> list[tuple[str, str]]:
    """Pairs of keys of which one must not exceed the other: a backoff that starts above its ceiling
    (it would wait the ceiling from the first retry; a trial's 120 s first wait and 60 s ceiling were
    accepted). Checked here, where the sections meet, with both keys named."""
    pairs = [(f"sources.{name}", getattr(config.sources, name), "backoff_initial_seconds", "backoff_max_seconds")
             for name in ("nezarat4", "saba")]
    pairs.append(("alerts.retry", config.alerts.retry, "first_wait_seconds", "max_wait_seconds"))
    found = []
    for where, section, low, high in pairs:
        first, most = getattr(section, low), getattr(section, high)
        if first > most:
            found.append((f"{where}.{low}", f"{where}.{low} = {first:g} is above {where}.{high} = {most:g}: "
                                            f"the wait starts at {low} and grows up to {high}"))
    return found


def parse_config(data: Any, path: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, ["the file must hold a mapping of sections (database:, sources:, ...)"])
    # one line a key, the first found: the numbers' before pydantic's ("Input should be greater than
    # 0" of a NaN), pydantic's before a .nan or .inf that no number setting holds (a duration's)
    problems = dict(_numbers_as_written(Config, data))
    try:
        config = Config.model_validate(data, context={AS_WRITTEN: True})
    except ValidationError as exc:
        for loc, line in _problems(exc):
            problems.setdefault(loc, line)
        for loc, line in _not_finite_as_written(data):
            problems.setdefault(loc, line)
        raise ConfigError(path, list(problems.values())) from None
    for loc, line in _not_finite_as_written(data) + _in_order(config):
        problems.setdefault(loc, line)
    if problems:
        raise ConfigError(path, list(problems.values()))
    return config


def load_config(path: str | os.PathLike[str] | None = None) -> LoadedConfig:
    """Load and validate: --config, else $BUDGETWATCH_CONFIG, else ./config.yaml, else defaults."""
    explicit = path or os.environ.get(CONFIG_ENV)
    candidate = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)
    if not candidate.exists():
        if explicit:
            raise ConfigError(str(candidate), ["file not found"])
        defaults = parse_config({}, "<defaults>")
        _check_data_dir(defaults, "<defaults>")
        return LoadedConfig(defaults, "<defaults>")
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
    _check_data_dir(config, str(candidate))
    loaded = LoadedConfig(_place_password_files(config, candidate), str(candidate))
    _warn_of_uncovered_groups(loaded.config)
    return loaded


def _warn_of_uncovered_groups(config: Config) -> None:
    """One WARNING line per group routing gives agencies to and no expert covers, while alerts are on
    (a trial: a group without an expert had its deviations e-mailed to no one, and nothing said so).
    Not an error: a group may be followed in the console only. `alerts send` and `alerts preview` say
    how many open deviations reached no one because of it."""
    if config.alerts.enabled:
        for group in uncovered_groups(config.experts, config.routing):
            log.warning("%s", uncovered_line(group))


def _data_dir_line(data_dir: Path, exc: OSError) -> str:
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return _data_dir_in_the_way(data_dir) or f"data_dir = '{data_dir}': not a folder"
    return f"data_dir = '{data_dir}': cannot make this folder ({exc.strerror or exc})"


def _nearest(data_dir: Path) -> tuple[Path, int] | None:
    """The nearest of ``data_dir`` and the folders above it that exists, with its mode; None when
    that cannot be told (a folder above that this user may not look into: said when it is used)."""
    for place in (data_dir, *data_dir.parents):
        try:
            return place, place.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):  # not there, or a file above it: look further up
            continue
        except OSError:
            return None
    return None


def data_dir_unwritable(data_dir: Path) -> str | None:
    """Why this user cannot write in ``data_dir`` (or make it), or None: where the console's session
    secret and the signed archive are written whatever the store (an operator's trial: a PostgreSQL
    deployment's data_dir the service's user could not write passed check-config, then `web` and
    `review approve` failed with a PermissionError, exit 1)."""
    nearest = _nearest(data_dir)
    if nearest is None or not stat.S_ISDIR(nearest[1]) or os.access(nearest[0], os.W_OK | os.X_OK):
        return None
    if nearest[0] == data_dir:
        return f"data_dir = '{data_dir}': this user may not write in it (mode {stat.S_IMODE(nearest[1]):o})"
    return f"data_dir = '{data_dir}': cannot make this folder ({nearest[0]} may not be written)"


def _data_dir_in_the_way(data_dir: Path) -> str | None:
    """A file (not a folder) at ``data_dir`` or at one of the folders above it, said for data_dir."""
    nearest = _nearest(data_dir)
    if nearest is None or stat.S_ISDIR(nearest[1]):
        return None
    place = nearest[0]
    what = "is a file" if place == data_dir else f"is under {place}, which is a file"
    return f"data_dir = '{data_dir}': {what}, not a folder"


def _check_data_dir(config: Config, path: str) -> None:
    """data_dir as a folder budgetwatch can use, said before any command runs, naming the key (a
    trial: `data_dir: /etc/hostname` passed check-config and every command then failed with
    FileExistsError, exit 1). A file where the folder should be is refused whatever the store (the
    console's secret and the signed archive live there too); a folder still to be made, when the
    store is the embedded default that lives in it, must be one this user may make. Nothing is
    made here: loading the configuration (`sync --help`) creates no folder; the store's URL does
    (Config.database_url), which turns what only trying can tell into the same kind of line."""
    problem = _data_dir_in_the_way(config.data_dir)
    nearest = _nearest(config.data_dir)
    if problem is None and nearest is not None and nearest[0] != config.data_dir and config.uses_data_dir_store \
            and not os.access(nearest[0], os.W_OK | os.X_OK):
        problem = f"data_dir = '{config.data_dir}': cannot make this folder ({nearest[0]} may not be written)"
    if problem is not None:
        raise ConfigError(path, [problem])


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, except that a number is decimal or text: an agency code written 032 is
    '032', not YAML 1.1's octal 26 (a new user's routing of agency 032 went to agency 26 — to no
    expert — without a word); 0x1F, 0b101 and 1:30 stay text too. A key given twice in one mapping
    is an error naming it and both lines (YAML forbids it; PyYAML kept the last: a second `routing:`
    block replaced the first without a word, a trial); a merge (`<<: *defaults`) may still be
    overridden by the mapping's own keys."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._checked: set[yaml.Node] = set()  # the mappings whose own keys were checked

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # checked here, the first time a mapping is flattened: its own keys as written, before the
        # merged ones join them (a merge may flatten an anchored mapping before it is constructed)
        if node not in self._checked:
            self._checked.add(node)
            self._refuse_duplicate_keys(node)
        super().flatten_mapping(node)

    def _refuse_duplicate_keys(self, node: yaml.MappingNode) -> None:
        first: dict[Any, yaml.Node] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the base class says so
                continue
            if earlier is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice (first on line {earlier.start_mark.line + 1}); "
                    "keep one: the second would replace the first", key_node.start_mark)


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
