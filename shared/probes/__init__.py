"""Probes: synthetic checks that travel the whole event pipeline.

A probe is recorded idempotently over HTTP, announced through the outbox (``probe.created``),
picked up by the Pub/Sub consumer, which schedules a Cloud Task ``delay_seconds`` ahead, whose
handler completes the probe (``probe.completed``). Operators and the smoke test use it to prove
that every trigger kind works end to end and to measure each hop's latency.
"""
