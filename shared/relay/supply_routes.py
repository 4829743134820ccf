"""Supply-side routes: providers, SIMs, devices, heartbeats, earnings; the sweeper's offline pass (ADR 0043)."""
