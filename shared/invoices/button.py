"""The embeddable "pay" button of a payment link: an HTML snippet a merchant pastes into a page.

Pure. A plain ``<a>`` styled inline as a button that opens the link's hosted page in a new tab:
no script (nothing runs on the merchant's page, so no Content-Security-Policy exception and no
supply-chain risk), ``rel="noopener noreferrer"`` so the opened page cannot reach back into the
merchant's window. Every value that reaches the HTML is escaped (``html.escape`` with quotes),
the URL included, so a hostile label or description cannot break out of its attribute or text.
"""
from __future__ import annotations

import html

from shared.ledger import assets

STYLE = ("display:inline-block;padding:10px 20px;border-radius:6px;background:#1a56db;"
         "color:#ffffff;font:600 15px/1.2 system-ui,sans-serif;text-decoration:none")


def default_label(link: dict) -> str:
    """"Pay 12.34 USD" for a priced link, "Pay" when the visitor chooses the amount."""
    amount = link.get("amount")
    if amount is None:
        return "Pay"
    return f"Pay {assets.format_decimal(int(amount), link['currency'])} {link['currency']}"


def snippet(url: str, label: str, *, title: str | None = None) -> str:
    attrs = [f'href="{html.escape(url, quote=True)}"', 'target="_blank"',
             'rel="noopener noreferrer"', 'class="payloom-pay-button"',
             f'style="{html.escape(STYLE, quote=True)}"']
    if title:
        attrs.append(f'title="{html.escape(title, quote=True)}"')
    return f"<a {' '.join(attrs)}>{html.escape(label, quote=True)}</a>"
