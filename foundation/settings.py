"""The base of every layer's settings model, and the error a bad configuration raises.

Each layer owns the model of its section of config.yaml (connectors: sources; reconcile: rules and
routing; alerts; service: schedule); budgetwatch.config composes them and loads the file. Models are
strict: an unknown key is an error naming its path, never a silent default.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(Exception):
    """The configuration is unusable. ``problems`` holds one line per problem, naming the key."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class Strict(BaseModel):
    """A settings section: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
