"""Dispatch-side routes: client messages, the phone's job fetch and reports, step deadlines (ADR 0044)."""
