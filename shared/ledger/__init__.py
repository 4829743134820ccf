"""The double-entry ledger: assets, accounts, immutable transfers (TigerBeetle's model on
Firestore), hold expiry and the audit. See docs/decisions/0020-ledger.md."""
