"""Outbound messages (email, SMS, push) that leave after commit, with retries (ADR 0005).

A request never talks to a provider: it calls ``queue_email``/``queue_sms``/``queue_push`` inside
its unit of work, which writes the message (content sealed at rest) and an internal event in the
same commit. ``notify_events`` sends it; failures retry from ``notify_tasks`` with back-off, then
dead-letter.
"""
from shared.notify.outbound import queue_email, queue_push, queue_sms  # noqa: F401
