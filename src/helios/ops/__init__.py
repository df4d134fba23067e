"""Operations over the ledger: runtime feature flags, the health monitor, alerts, metrics."""
