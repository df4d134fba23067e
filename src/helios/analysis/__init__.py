"""Analyses of the ledger's events: tasks, distributions, A/B comparisons, plots."""
