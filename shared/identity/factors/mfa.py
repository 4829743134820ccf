"""Second factors of an account: TOTP (RFC 6238), single-use backup codes, and the switch of the
SMS factor (``factors.sms``). The sign-in challenge that asks for one is ``factors.challenges``.

Records:
* ``user_mfa/{usr_…}``: ``totp_secret`` (enabled), ``pending_secret`` (enrolment in progress),
  ``last_totp_step`` (the highest 30-s step accepted: a code is never accepted twice, nor an
  older one), ``backup_codes`` (``[{hash, used_at}]``, SHA-256 of salt + code).
  The user document carries ``mfa_enabled`` so login learns it from the read it already does.

Backup codes are 16 base32 characters (80 bits) shown once as ``xxxx-xxxx-xxxx-xxxx``; with
that much entropy a salted SHA-256 is enough (an argon2 per code would make each backup-code
login cost 10 hashes). TOTP secrets are 160-bit base32 (pyotp default length 32).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import re
import secrets
import struct
import zlib
from typing import Any

import pyotp
import qrcode

from shared.identity.users import directory
from shared.identity.config import identity_settings
from shared.identity.responses import MfaBackupCodes, MfaStatus, TotpEnrollment
from shared.platform.errors import Conflict, InvalidRequest, Unprocessable
from shared.platform.secrets_at_rest import context as sealed_context, envelope

MFA = "user_mfa"
BACKUP_CODE_COUNT = 10
TOTP_INTERVAL = 30
TOTP_WINDOW = 1  # accept the previous and the next step for clock drift
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_TOTP_RE = re.compile(r"^\d{6}$")


# --- TOTP and backup code primitives --------------------------------------------------------

def match_totp(secret: str, code: str, now: dt.datetime, last_step: int | None) -> int | None:
    """The step ``code`` is valid for (within the window, after ``last_step``), else None."""
    code = code.strip().replace(" ", "")
    if not _TOTP_RE.match(code):
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_INTERVAL)
    current = int(now.timestamp()) // TOTP_INTERVAL
    found = None
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (last_step is None or step > last_step):
            found = step
    return found


def new_backup_codes() -> list[str]:
    codes = []
    for _ in range(BACKUP_CODE_COUNT):
        raw = "".join(secrets.choice(_B32) for _ in range(16))
        codes.append("-".join(raw[i:i + 4] for i in range(0, 16, 4)))
    return codes


def _normalise_backup(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def backup_hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{_normalise_backup(code)}".encode()).hexdigest()


def _match_backup(doc: dict[str, Any], code: str) -> int | None:
    """Index of the unused backup code equal to ``code`` (constant-time compares), else None."""
    if len(_normalise_backup(code)) != 16:
        return None
    digest = backup_hash(doc.get("backup_salt", ""), code)
    found = None
    for i, entry in enumerate(doc.get("backup_codes") or []):
        if hmac.compare_digest(entry["hash"], digest) and entry.get("used_at") is None:
            found = i
    return found


def qr_png_data_uri(text: str, scale: int = 6) -> str:
    """A QR code as a 1-bit PNG data URI (qrcode's matrix, encoded here: no Pillow needed)."""
    qr = qrcode.QRCode(border=4, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(text)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    size = len(matrix) * scale
    rows = bytearray()
    for row in matrix:
        bits = []
        for dark in row:
            bits.extend([0 if dark else 1] * scale)  # 1 = white in a grayscale PNG
        line = bytearray([0])  # filter: none
        for i in range(0, size, 8):
            byte = 0
            for b in bits[i:i + 8] + [1] * max(0, i + 8 - size):
                byte = (byte << 1) | b
            line.append(byte)
        rows.extend(bytes(line) * scale)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = io.BytesIO()
    png.write(b"\x89PNG\r\n\x1a\n")
    png.write(chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)))
    png.write(chunk(b"IDAT", zlib.compress(bytes(rows), 9)))
    png.write(chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()


# --- TOTP seeds at rest: sealed through the KMS port (ADR 0004) --------------------------------
# One purpose ("totp") for pending_secret and totp_secret: confirming moves the sealed value as is.
# Legacy plaintext seeds still verify; the rewrap job (secrets_at_rest.rewrap_all) seals them.

def _seal_totp(deps, user_id: str, secret: Any) -> Any:
    return envelope(deps).ensure_sealed(secret, context=sealed_context(MFA, user_id, "totp"))


def opened(deps, user_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the TOTP seed in clear, for checking a code only (never written back)."""
    env, ctx = envelope(deps), sealed_context(MFA, user_id, "totp")
    return {**doc, "totp_secret": env.reveal(doc.get("totp_secret"), context=ctx)}


# --- enrolment -----------------------------------------------------------------------------------

def mfa_ref(db, user_id: str):
    return db.collection(MFA).document(user_id)


def status(deps, user_id: str) -> MfaStatus:
    snap = mfa_ref(deps.db, user_id).get()
    return status_of(snap.to_dict() if snap.exists else {})


def status_of(doc: dict[str, Any], *, phone: str | None = None) -> MfaStatus:
    """The status every MFA route answers, from the ``user_mfa`` doc as it is after the
    request (``phone``: the masked number of the SMS factor, when it was just turned on)."""
    enabled = bool(doc.get("totp_secret"))
    remaining = sum(1 for c in doc.get("backup_codes") or [] if c.get("used_at") is None)
    return MfaStatus(totp_enabled=enabled, sms_enabled=bool(doc.get("sms_enabled")),
                     backup_codes_remaining=remaining if enabled else 0,
                     methods=methods(doc), phone=phone)


def _with_backup_codes(doc: dict[str, Any], codes: list[str]) -> MfaBackupCodes:
    return MfaBackupCodes(**dict(status_of(doc)), backup_codes=codes)


def methods(doc: dict[str, Any]) -> list[str]:
    return ((["totp", "backup_code"] if doc.get("totp_secret") else [])
            + (["sms"] if doc.get("sms_enabled") else []))


def begin_totp(uow, user_id: str) -> TotpEnrollment:
    """Start (or restart) TOTP enrolment: a new secret, its otpauth:// URI and a QR code."""
    deps, db, now = uow.deps, uow.db, uow.now
    settings = identity_settings(deps)
    ref = mfa_ref(db, user_id)
    uref = directory.user_ref(db, user_id)
    snaps = uow.get_all([ref, uref])
    doc = snaps[ref.path].to_dict() if snaps[ref.path].exists else {}
    if doc.get("totp_secret"):
        raise Conflict("Two-factor authentication is already enabled; disable it first.",
                       code="mfa_already_enabled")
    user = snaps[uref.path].to_dict() if snaps[uref.path].exists else {}
    secret = pyotp.random_base32()
    uow.set(ref, {"user_id": user_id, "pending_secret": _seal_totp(deps, user_id, secret),
                  "pending_created_at": now}, merge=True)
    label = user.get("email") or user.get("username") or user_id
    uri = pyotp.TOTP(secret, interval=TOTP_INTERVAL).provisioning_uri(
        name=label, issuer_name=settings.totp_issuer)
    return TotpEnrollment(secret=secret, otpauth_uri=uri, qr_code=qr_png_data_uri(uri),
                          digits=6, period=TOTP_INTERVAL, algorithm="SHA1")


def confirm_totp(uow, user_id: str, code: str) -> MfaBackupCodes:
    """Finish enrolment with a current code; returns the backup codes (shown this once)."""
    deps, db, now = uow.deps, uow.db, uow.now
    ref, uref = mfa_ref(db, user_id), directory.user_ref(db, user_id)
    snap = uow.get(ref)
    doc = snap.to_dict() if snap.exists else {}
    if doc.get("totp_secret"):
        raise Conflict("Two-factor authentication is already enabled.", code="mfa_already_enabled")
    pending = doc.get("pending_secret")
    if not pending:
        raise Unprocessable("Start enrolment first (POST /v1/me/mfa/totp).",
                            code="mfa_enrollment_missing")
    step = match_totp(envelope(deps).reveal(pending, context=sealed_context(MFA, user_id, "totp")),
                      code, now, None)
    if step is None:
        raise InvalidRequest("The code is not valid.", param="code", code="invalid_mfa_code")
    codes = new_backup_codes()
    salt = secrets.token_hex(16)
    update = {"user_id": user_id, "totp_secret": _seal_totp(deps, user_id, pending),
              "pending_secret": None, "last_totp_step": step, "enabled_at": now,
              "backup_salt": salt,
              "backup_codes": [{"hash": backup_hash(salt, c), "used_at": None} for c in codes]}
    uow.set(ref, update, merge=True)  # keeps an SMS factor
    uow.update(uref, {"mfa_enabled": True})
    return _with_backup_codes({**doc, **update}, codes)


def consume_code(doc: dict[str, Any], method: str | None, code: str,
                  now: dt.datetime) -> dict[str, Any] | None:
    """The update that consumes ``code`` (TOTP step or backup code), or None if it is wrong."""
    if method in (None, "totp") and doc.get("totp_secret"):
        step = match_totp(doc["totp_secret"], code, now, doc.get("last_totp_step"))
        if step is not None:
            return {"last_totp_step": step, "_method": "totp"}
    if method in (None, "backup_code"):
        idx = _match_backup(doc, code)
        if idx is not None:
            codes = [dict(c) for c in doc["backup_codes"]]
            codes[idx]["used_at"] = now
            return {"backup_codes": codes, "_method": "backup_code"}
    return None


def _with_code(uow, user_id: str, code: str) -> dict[str, Any]:
    """Consume a valid TOTP or backup code in ``uow``; returns the MFA doc after it."""
    ref = mfa_ref(uow.db, user_id)
    snap = uow.get(ref)
    doc = snap.to_dict() if snap.exists else {}
    if not doc.get("totp_secret"):
        raise Unprocessable("Two-factor authentication is not enabled.", code="mfa_not_enabled")
    update = consume_code(opened(uow.deps, user_id, doc), None, code, uow.now)
    if update is None:
        raise InvalidRequest("The code is not valid.", param="code", code="invalid_mfa_code")
    update.pop("_method")
    uow.update(ref, update)
    return {**doc, **update}


def disable_totp(uow, user_id: str, code: str) -> MfaStatus:
    doc = _with_code(uow, user_id, code)
    after = {"user_id": user_id, "totp_secret": None, "pending_secret": None,
             "backup_codes": [], "last_totp_step": doc.get("last_totp_step"),
             "sms_enabled": bool(doc.get("sms_enabled"))}
    uow.set(mfa_ref(uow.db, user_id), after)
    # SMS, if on, stays a second factor.
    uow.update(directory.user_ref(uow.db, user_id), {"mfa_enabled": bool(doc.get("sms_enabled"))})
    return status_of(after)


def regenerate_backup_codes(uow, user_id: str, code: str) -> MfaBackupCodes:
    doc = _with_code(uow, user_id, code)
    codes = new_backup_codes()
    salt = secrets.token_hex(16)
    update = {"backup_salt": salt,
              "backup_codes": [{"hash": backup_hash(salt, c), "used_at": None} for c in codes]}
    uow.update(mfa_ref(uow.db, user_id), update)
    return _with_backup_codes({**doc, **update}, codes)


def factors_doc(uow, user_id: str) -> dict[str, Any]:
    """The user's ``user_mfa`` document read in ``uow`` (``{}`` if none)."""
    snap = uow.get(mfa_ref(uow.db, user_id))
    return snap.to_dict() if snap.exists else {}


def set_sms_enabled(uow, user_id: str, enabled: bool) -> None:
    """Turn the SMS factor's flag on or off in ``uow`` (TOTP and backup codes are kept)."""
    fields = ({"user_id": user_id, "sms_enabled": True, "sms_enabled_at": uow.now} if enabled
              else {"sms_enabled": False})
    uow.set(mfa_ref(uow.db, user_id), fields, merge=True)
