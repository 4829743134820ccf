"""The SMS relay network (PeerPower, issue 11): providers' phones send clients' SMS.

Supply side (ADR 0043): providers, SIMs, devices, heartbeats, the availability index matching
reads, reputation and anti-fraud. Demand side and dispatch (ADR 0044): the client messages API,
content checks, matching, FCM dispatch, deadlines and reassignment, statuses and proof of
delivery.
"""
