"""budgetwatch: reconciles the budget performance Khuzestan's agencies report in Nezarat-4 and SABA."""

__version__ = "0.1.0"
