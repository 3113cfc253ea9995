"""SABA (expense agreements), served as saba.md specifies: a JSON API with bearer tokens.

portal.py is the application (routing, tokens, the rate limit, the agreements listing);
payloads.py writes the JSON items. Split as connectors/saba/ is on the reading side.
"""

from simulator.saba.portal import SabaPortal

__all__ = ["SabaPortal"]
