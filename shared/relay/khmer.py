"""Khmer for the provider's phone app: short texts for errors and statuses (ADR 0043).

A request with ``Accept-Language: km`` (first or with the highest weight among km/en) gets
``message_km`` next to the English ``message`` of every error of the ``relay`` router (the
router calls ``localize_error`` on its way out, so errors raised before a handler runs are
covered too) and on status answers (heartbeat, provider). Without it nothing changes, so the
error envelope stays the platform's four fields. Texts are keyed by error code or status; an
unknown code falls back to a generic sentence. Dispatch adds its own codes with ``KM.update``.
"""
from __future__ import annotations


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
    # the platform's own (router, auth, idempotency, pagination)
    "invalid_request": "សំណើមិនត្រឹមត្រូវ។",
    "unknown_route": "រកមិនឃើញអាសយដ្ឋាននេះទេ។",
    "method_not_allowed": "វិធីសាស្ត្រនេះមិនត្រូវបានអនុញ្ញាតទេ។",
    "unsupported_media_type": "ប្រភេទទិន្នន័យមិនត្រូវបានគាំទ្រ។ សូមផ្ញើ JSON។",
    "payload_too_large": "ទិន្នន័យធំពេក។",
    "invalid_json": "ទិន្នន័យ JSON មិនត្រឹមត្រូវ។",
    "unexpected_body": "សំណើនេះមិនត្រូវការទិន្នន័យទេ។",
    "invalid_form": "ទម្រង់មិនត្រឹមត្រូវ។",
    "invalid_cursor": "ទំព័របន្ទាប់មិនត្រឹមត្រូវ។",
    "unauthenticated": "សូមចូលគណនីជាមុនសិន។",
    "missing_credentials": "សូមចូលគណនីជាមុនសិន។",
    "invalid_credentials": "ការចូលគណនីផុតកំណត់ ឬមិនត្រឹមត្រូវ។ សូមចូលម្ដងទៀត។",
    "invalid_token": "ការចូលគណនីផុតកំណត់ ឬមិនត្រឹមត្រូវ។ សូមចូលម្ដងទៀត។",
    "account_disabled": "គណនីរបស់អ្នកត្រូវបានបិទ។",
    "forbidden": "អ្នកមិនមានសិទ្ធិធ្វើការនេះទេ។",
    "principal_not_allowed": "អ្នកមិនមានសិទ្ធិធ្វើការនេះទេ។",
    "missing_scope": "អ្នកមិនមានសិទ្ធិធ្វើការនេះទេ។",
    "conflict": "មានការផ្លាស់ប្ដូរក្នុងពេលតែមួយ។ សូមព្យាយាមម្ដងទៀត។",
    "idempotency_key_in_use": "សំណើដូចគ្នាកំពុងដំណើរការ។ សូមរង់ចាំបន្តិច។",
    "idempotency_key_reused": "លេខសម្គាល់សំណើនេះត្រូវបានប្រើរួចហើយ។",
    "idempotency_key_invalid": "លេខសម្គាល់សំណើមិនត្រឹមត្រូវ។",
    "service_unavailable": "សេវាមិនទាន់អាចប្រើបានទេ។ សូមព្យាយាមម្ដងទៀត។",
    "internal_error": GENERIC,
    # statuses
    "online": "កំពុងដំណើរការ",
    "offline": "ផ្ដាច់",
    "busy": "រវល់",
    "blacklisted": "ត្រូវបានហាមឃាត់",
    "provider_active": "គណនីដំណើរការ",
    "provider_blacklisted_status": "គណនីត្រូវបានផ្អាក",
}


def wants_khmer(request) -> bool:
    """Whether ``Accept-Language`` prefers Khmer over English: the first language range of the
    highest weight whose primary subtag is ``km`` or ``en`` (``km-KH``, the tag an Android
    locale gives, is Khmer; ``en-GB`` is English; ``q=0`` means "not this one")."""
    if request is None:
        return False
    accept = getattr(request, "accept_languages", None)
    if accept is None:
        return False
    for value, quality in accept:   # highest weight first, ties in the order sent
        primary = value.replace("_", "-").split("-", 1)[0].strip().lower()
        if quality > 0 and primary in ("km", "en"):
            return primary == "km"
    return False


def text(code: str) -> str:
    return KM.get(code, GENERIC)


def status_km(status: str) -> str:
    if status == "provider_blacklisted":
        status = "provider_blacklisted_status"
    return KM.get(status, GENERIC)


def localize_error(request, error: dict) -> None:
    """The relay router's error localizer (``Router(localize_errors=...)``): a Khmer-speaking
    phone gets ``message_km`` on every error, the router's own (401, 404, 405, 415, body
    validation, rate limits) as well as the handlers'."""
    if wants_khmer(request):
        error["message_km"] = text(str(error.get("code") or ""))
