"""Invoices and payment links (issue 9 item 8): see docs/decisions/0036-invoices-links.md."""
