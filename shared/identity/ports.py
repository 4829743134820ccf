"""Ports the identity capability talks to the outside world through."""
from __future__ import annotations

# The email port lives with its adapter now (issue 7: provider clients in shared/adapters);
# re-exported so identity code keeps importing it from here.
from shared.adapters.email_sendgrid import (EmailDeliveryError, EmailMessage,  # noqa: F401
                                            EmailSender)
