"""webhooks: merchants' webhook endpoints, deliveries, attempts, replay (/v1/webhook_endpoints)."""
import functions_framework

import shared.webhooks.secrets  # noqa: F401  (seals or opens signing secrets: the KMS role)
from shared.identity.sessions.authn import identity_authenticator
from shared.merchants.context import merchant_context
from shared.platform.entry import boot
from shared.webhooks.http import api

# A member acting for a merchant (Payloom-Merchant header) manages the merchant's endpoints.
boot("webhooks", authenticators=[identity_authenticator], resolvers=[merchant_context])


@functions_framework.http
def handle(request):
    return api(request)
