"""Rate limits of the identity endpoints (ADR 0010 has the table and the sources).

Route limits are keyed by client IP (public routes) or principal; the per-account limits
(login per identifier, forgot-password per email, verification resend per user) are enforced
in the services because the key comes from the request body.
"""
from shared.platform.ratelimit import Limit

# Login's guessing limits (10 failures/min per IP, 10 attempts/min per account, consecutive
# failures) are counted in the login's own commit (shared.identity.users.login_guard, ADR 0010); the
# route keeps only a per-instance capacity limit, so a login costs no rate-limit round trip.
LOGIN_IP = Limit("login.ip.capacity", 60, 60, shared=False)
REGISTER_IP = Limit("auth.register.ip", 100, 3600)        # Firebase: 100 accounts/h per IP
REFRESH_IP = Limit("auth.refresh.ip", 150, 300)           # Supabase: 150 refreshes / 5 min
VERIFY_IP = Limit("auth.verify.ip", 30, 3600)             # verify-email / reset: 30/h per IP
FORGOT_IP = Limit("auth.forgot.ip", 30, 3600)
MFA_VERIFY_IP = Limit("auth.mfa.ip", 30, 300)             # Supabase: 30 verifications / 5 min
MFA_SMS_IP = Limit("auth.mfa.sms.ip", 10, 300)            # SMS factor codes texted per IP
LOGOUT_PRINCIPAL = Limit("auth.logout.principal", 60, 60)
RESEND_PRINCIPAL = Limit("auth.resend.principal", 10, 3600)

ME_READ = Limit("me.read.principal", 600, 60)
ME_WRITE = Limit("me.write.principal", 60, 60)
PASSWORD_CHANGE = Limit("me.password.principal", 10, 3600)
MFA_MANAGE = Limit("me.mfa.principal", 30, 300)
API_KEY_CREATE = Limit("me.api_keys.create.principal", 30, 3600)
