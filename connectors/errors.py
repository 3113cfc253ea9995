"""The errors a connector raises, named by what the caller should do.

    ConnectorError                 base: catch this to stop one source and go on with the other
    ├── SourceUnavailable          transient faults outlasted the retry budget: try again next run
    ├── AuthenticationFailed       wrong credentials, captcha demanded, account locked: an operator
    │                              must act; never retried; the message says what to do and never
    │                              contains the password
    ├── LayoutChanged              the page or JSON is not the contracted structure (drift): stop the
    │                              source, store nothing from that answer, tell the developers
    └── ProtocolError              the portal broke the contract in another way (e.g. a second login
                                   redirect in a row for the same request)

Row- and item-level problems are not exceptions: they travel as ``records.Rejection`` values.
``NotFound`` is an ordinary outcome too (a project no longer there), signalled by ``None`` returns.
"""

from __future__ import annotations

import copyreg


class ConnectorError(Exception):
    """Base of everything a connector raises. ``source`` names the portal."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source
        self.message = message

    def __str__(self) -> str:  # one line, for the CLI and the run record
        return f"{self.source}: {self.message}"

    def __reduce__(self):
        # Pickled whole (a page read in a worker process raises in the caller): rebuilt from its
        # attributes without calling __init__, whose signature differs from ``args`` here and in
        # every subclass. The default would call ``cls(*args)`` and fail.
        return copyreg.__newobj__, (type(self), *self.args), self.__dict__


class SourceUnavailable(ConnectorError):
    """The portal kept failing (errors, maintenance, time-outs) beyond the retry budget."""


class AuthenticationFailed(ConnectorError):
    """Login refused. ``reason`` is one of 'invalid_credentials', 'captcha', 'account_locked'."""

    def __init__(self, source: str, reason: str, message: str) -> None:
        super().__init__(source, message)
        self.reason = reason


class LayoutChanged(ConnectorError):
    """The answer parsed but is not the contracted page/JSON: the portal changed."""

    def __init__(self, source: str, page: str, expected: str, found: str) -> None:
        super().__init__(
            source, f"layout changed on {page}: expected {expected}, found {found}"
        )
        self.page = page
        self.expected = expected
        self.found = found


class ProtocolError(ConnectorError):
    """The portal answered in a way the contract does not allow."""



class YearNotOffered(ProtocolError):
    """The portal does not hold the fiscal year asked for (Nezarat-4: not among ``ddlYear``'s
    options, "the years the portal holds"): that year is skipped, the other years are read."""

    def __init__(self, source: str, fiscal_year: int, offered: list[str]) -> None:
        super().__init__(source, f"the portal does not offer fiscal year {fiscal_year} "
                                 f"(it offers {', '.join(offered) or 'none'})")
        self.fiscal_year = fiscal_year
        self.offered = offered
