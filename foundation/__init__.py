"""The ground floor: what every layer of budgetwatch shares, importing nothing of the project.

- ``persian``: Persian text, digits, numbers and codes canonicalised at the boundary
- ``jalali``: the Jalali calendar, fiscal years and quarters, Asia/Tehran
- ``counties``: Khuzestan's counties and their canonical names
- ``records``: the typed records that are the contract between connectors and store
- ``vocabulary``: one definition of sources, severities, statuses and expert groups
- ``present``: how figures, dates and names appear to people, in every output
- ``settings``: the base of every layer's settings model and the configuration error
- ``workers``: how child processes are started (forkserver)

Every other package may import this one; this one imports none of them (tests/test_layers.py).
"""

__version__ = "0.1.0"
