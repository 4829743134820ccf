"""Custody: what Payloom does with the crypto it holds (issue 9, item 5).

Sweeping received funds from custodial deposit addresses to the hot wallet (the treasury), the
hot wallet's cap above which funds move to a cold, watch-only address, and treasury withdrawals
that need M-of-N custodian approvals above a threshold. Design: docs/decisions/0038 (sweeps and
cold storage) and 0039 (withdrawals and approvals).
"""
