"""API keys: who may call ``helios serve``, for which tenant, within what budget.

:mod:`.model` (the key, its format and options), :mod:`.store` (the contract and what lives
above the backends), :mod:`.sqlite` and :mod:`.postgres` (the backends), :mod:`.factory`
(the one the settings name), :mod:`.directory` (a process's short-lived view of the keys)
and :mod:`.budgets` (a key's budget and rate limit as governor budgets).
"""
