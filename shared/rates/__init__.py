"""Rates: prices from a feed (CoinGecko protocol), cached and shared, refused when stale, and
exact conversions between the ledger's assets (docs/decisions/0034-rates.md)."""
