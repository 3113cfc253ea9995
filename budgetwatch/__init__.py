"""budgetwatch: the application shell (the CLI and the composition of the configuration).

The rest of the product lives beside it: foundation/ (the ground floor), connectors/, sync/,
store/, reconcile/ and the parts that tell people. See docs/architecture.md.
"""

from foundation import __version__

__all__ = ["__version__"]
