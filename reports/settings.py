"""The reports' section of config.yaml (``reports``): the monitoring cycle's service time.

Until budgetwatch.config composes this section into ``Config`` (the lead wires it), commands fall
back to these defaults.
"""

from __future__ import annotations

from pydantic import Field

from foundation.settings import Strict


class ReportsConfig(Strict):
    # days each step of the monitoring cycle may take: agency report, comptroller approval, group
    # review (the service card's service time)
    service_days: int = Field(default=10, ge=1, le=120)
