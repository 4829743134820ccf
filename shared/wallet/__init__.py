"""The wallet: balances, top-ups (Stripe), P2P transfers, history, statements and records,
built on the ledger (shared/ledger). See docs/decisions/0020-ledger.md."""
