"""The event ledger: typed events of every step, and the sinks that receive them."""
