"""What ``shared/web`` itself says to a visitor (the error page's refusals), as message ids.

They are English msgids translated through ``shared/web/locale`` (the fallback catalogue of
every page capability), so a refusal raised below the capability (a CSRF failure, an unknown
address, a form that cannot be read) reaches the visitor in their language too.
"""
from __future__ import annotations


def N_(message: str) -> str:       # marks a msgid for extraction; translated when shown
    return message


PAGE_MISSING = N_("This page does not exist.")
METHOD_REFUSED = N_("This page cannot be used that way.")
FILE_MISSING = N_("No such file.")
UNREADABLE = N_("The request could not be read.")
FAILED = N_("Something went wrong on our side. Please try again.")
CSRF_CROSS_SITE = N_("Cross-site form submissions are refused.")
CSRF_CROSS_ORIGIN = N_("Cross-origin form submissions are refused.")
CSRF_EXPIRED = N_("The form expired or did not come from this page; reload and try again.")

OWN = frozenset({PAGE_MISSING, METHOD_REFUSED, FILE_MISSING, UNREADABLE, FAILED, CSRF_CROSS_SITE,
                 CSRF_CROSS_ORIGIN, CSRF_EXPIRED})
