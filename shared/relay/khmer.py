"""Khmer for the provider's phone app: short texts for errors and statuses (ADR 0043).

A request with ``Accept-Language: km`` (first or with the highest weight among km/en) gets
``message_km`` next to the English ``message`` of an error (``khmer_errors`` wraps a route
handler) and on status answers (heartbeat, provider). Without it nothing changes, so the error
envelope stays the platform's four fields. Texts are keyed by error code or status; an
unknown code falls back to a generic sentence. Dispatch (R2) may import ``khmer_errors`` and
``KM`` and add its own codes with ``KM.update``.
"""
from __future__ import annotations

import functools
from typing import Callable

from shared.platform.errors import PayloomError

GENERIC = "មានបញ្ហា។ សូមព្យាយាមម្ដងទៀត។"   # Something went wrong. Please try again.

KM: dict[str, str] = {
    # errors
    "not_a_provider": "សូមចុះឈ្មោះជាអ្នកផ្ដល់សេវាជាមុនសិន។",
    "provider_blacklisted": "គណនីរបស់អ្នកត្រូវបានផ្អាក។",
    "device_in_use": "ទូរសព្ទនេះជាកម្មសិទ្ធិរបស់គណនីផ្សេង។",
    "device_blacklisted": "ទូរសព្ទនេះត្រូវបានហាមឃាត់។",
    "device_limit_reached": "អ្នកមានទូរសព្ទច្រើនពេកហើយ។",
    "device_has_sims": "សូមផ្លាស់ទី ឬដកស៊ីមចេញពីទូរសព្ទនេះជាមុនសិន។",
    "sim_limit_reached": "អ្នកមានស៊ីមច្រើនពេកហើយ។",
    "sim_in_use": "លេខនេះជាកម្មសិទ្ធិរបស់គណនីផ្សេង។",
    "sim_blacklisted": "ស៊ីមនេះត្រូវបានហាមឃាត់។",
    "resource_missing": "រកមិនឃើញ។",
    "parameter_invalid": "ទិន្នន័យមិនត្រឹមត្រូវ។",
    "parameter_missing": "ខ្វះទិន្នន័យ។",
    "parameter_unknown": "ទិន្នន័យមិនស្គាល់។",
    "rate_limited": "សំណើច្រើនពេក។ សូមរង់ចាំបន្តិច។",
    "otp_invalid": "លេខកូដមិនត្រឹមត្រូវ។ សូមស្នើលេខកូដថ្មី។",
    "otp_incorrect": "លេខកូដមិនត្រឹមត្រូវ។",
    "otp_expired": "លេខកូដផុតកំណត់។ សូមស្នើលេខកូដថ្មី។",
    "otp_attempts_exceeded": "ព្យាយាមច្រើនដងពេក។ សូមស្នើលេខកូដថ្មី។",
    "otp_resend_too_soon": "សូមរង់ចាំមួយភ្លែត មុនស្នើលេខកូដម្ដងទៀត។",
    "phone_invalid": "លេខទូរសព្ទមិនត្រឹមត្រូវ។",
    "phone_country_not_allowed": "មិនអាចផ្ញើលេខកូដទៅប្រទេសនេះបានទេ។",
    "caps_invalid": "ដែនកំណត់សារមិនត្រឹមត្រូវ។",
    "contention": "ម៉ាស៊ីនមេរវល់។ សូមព្យាយាមម្ដងទៀត។",
    # statuses
    "online": "កំពុងដំណើរការ",
    "offline": "ផ្ដាច់",
    "busy": "រវល់",
    "blacklisted": "ត្រូវបានហាមឃាត់",
    "provider_active": "គណនីដំណើរការ",
    "provider_blacklisted_status": "គណនីត្រូវបានផ្អាក",
}


def wants_khmer(request) -> bool:
    """Whether ``Accept-Language`` prefers Khmer over English."""
    if request is None:
        return False
    accept = getattr(request, "accept_languages", None)
    if accept is None:
        return False
    return accept.best_match(["en", "km"]) == "km" and accept["km"] > 0


def text(code: str) -> str:
    return KM.get(code, GENERIC)


def status_km(status: str) -> str:
    if status == "provider_blacklisted":
        status = "provider_blacklisted_status"
    return KM.get(status, GENERIC)


def _with_khmer(original: Callable[[], dict], km: str) -> Callable[[], dict]:
    def envelope() -> dict:
        env = original()
        env["error"]["message_km"] = km
        return env
    return envelope


def khmer_errors(fn: Callable) -> Callable:
    """Route decorator (under ``@router.route``): an error answered to a Khmer-speaking phone
    carries ``message_km`` too."""
    @functools.wraps(fn)
    def wrapper(ctx, *args, **kwargs):
        try:
            return fn(ctx, *args, **kwargs)
        except PayloomError as exc:
            if wants_khmer(ctx.request):
                exc.envelope = _with_khmer(exc.envelope, text(exc.code))
            raise
    return wrapper
