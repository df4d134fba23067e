"""Governance: budgets (the governor), model choice (the router)."""
