"""Reports for merchants and operators: daily settlement reports, merchant analytics, and the
hourly reconciliation of deposit addresses' on-chain balances against the ledger (ADR 0037)."""
