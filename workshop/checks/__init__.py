"""Checks of the code base itself that ``make lint`` runs."""
