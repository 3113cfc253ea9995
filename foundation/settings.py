"""The base of every layer's settings model, and the error a bad configuration raises.

Each layer owns the model of its section of config.yaml (connectors: sources; reconcile: rules and
routing; alerts; service: schedule); budgetwatch.config composes them and loads the file. Models are
strict: an unknown key is an error naming its path, never a silent default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationInfo, field_validator, model_validator


class ConfigError(Exception):
    """The configuration is unusable. ``problems`` holds one line per problem, naming the key."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class Strict(BaseModel):
    """A settings section: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WithPassword(Strict):
    """A section with a login's ``password_env`` (a variable's name, with a default) and
    ``password_file``: the password is read from one of them. A file given without a variable is the
    one place it is read from; both given is refused. The variable's default name was read first, so
    a stray variable of that name (an old unit's environment file) overrode the file, and
    check-config named the variable (an operator's trial)."""

    @model_validator(mode="before")
    @classmethod
    def _a_file_alone(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # a key left blank (`password_file: ""`) is not set: "" would be the path "." (a review)
        data = {**data, **{k: None for k in ("password_env", "password_file")
                           if isinstance(data.get(k), str) and not data[k].strip()}}
        if data.get("password_file") and "password_env" not in data:
            return {**data, "password_env": None}
        return data

    @field_validator("password_file", check_fields=False)
    @classmethod
    def _not_both(cls, value: Any, info: ValidationInfo) -> Any:
        if value and info.data.get("password_env"):
            raise ValueError(f"password_env ({info.data['password_env']}) is set too: keep one and empty the "
                             "other (with both, the variable would be read and the file never)")
        return value


def read_password(key: str, password_env: str | None, password_file: Path | None, *,
                  unset_hint: str = "", missing: str) -> SecretStr:
    """A login's password read now: the variable ``password_env`` names, else the file (its text,
    stripped). Whatever stops it is a ConfigError naming ``key``'s ``password_env`` or
    ``password_file`` (``unset_hint`` follows an unset variable's line); ``missing`` is the line when
    neither is set. Shared by the portals' and the mail server's settings."""
    if password_env:
        value = os.environ.get(password_env)
        if value:
            return SecretStr(value)
        if not password_file:
            raise ConfigError("environment",
                              [f"{key}.password_env: the variable {password_env} is not set{unset_hint}"])
    if password_file:
        where = f"{key}.password_file"
        try:
            secret = password_file.expanduser().read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError("environment", [f"{where}: {password_file} is not UTF-8 text"]) from None
        except OSError as exc:
            raise ConfigError("environment",
                              [f"{where}: cannot read {password_file} ({exc.strerror})"]) from None
        if not secret:
            raise ConfigError("environment", [f"{where}: {password_file} is empty"])
        return SecretStr(secret)
    raise ConfigError("config", [missing])
