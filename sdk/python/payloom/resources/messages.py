"""SMS through the relay network (``/v1/messages``): send, read, list, cancel, opt-outs and the
callback signing secret. Keys need the ``sms:write`` (send, cancel, opt-outs) or ``sms:read``
scope."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from payloom.client import quote_id, split_options
from payloom.objects import ListObject, PayloomObject, register
from payloom.resources._base import Createable, Listable, Retrievable, action


@register
class Message(Createable, Retrievable, Listable):
    """An SMS sent by a provider's phone: ``to`` (E.164, Cambodian), ``text`` (GSM-7 or UCS-2,
    up to 10 parts), ``priority`` (high, normal, bulk), optional ``send_at``/``expires_at``
    (Unix seconds), ``client_reference``, ``callback_url`` and ``metadata``. ``create``
    answers 202: the message is queued.

    Statuses: queued → assigned → sending → sent → delivered, or failed (``failure_code``),
    expired, canceled; ``status_history`` has every change with its time and reason."""

    OBJECT_NAME = "message"
    PATH = "/v1/messages"

    id: str
    livemode: bool
    to: str
    carrier: str
    text: str
    encoding: str
    parts: int
    priority: str
    status: str
    status_history: List[PayloomObject]
    attempts: int
    client_reference: Optional[str]
    callback_url: Optional[str]
    metadata: Dict[str, str]
    created: int
    expires_at: int
    sent_at: Optional[int]
    delivered_at: Optional[int]
    failure_code: Optional[str]

    cancel = action("POST", "/cancel", doc="Cancel a message no phone has yet (queued, or "
                                           "assigned and not fetched).")

    @classmethod
    def opt_out(cls, to: str, **params: Any) -> Any:
        """Record that ``to`` wants no more of your messages (a STOP)."""
        params, options = split_options(params)
        params["to"] = to
        return cls._call("POST", f"{cls.PATH}/opt_outs", params, options)

    @classmethod
    def list_opt_outs(cls, **params: Any) -> ListObject:
        """Numbers that opted out of your messages, newest first."""
        params, options = split_options(params)
        return cls._list(f"{cls.PATH}/opt_outs", params, options)

    @classmethod
    def remove_opt_out(cls, opt_out_id: str, **params: Any) -> Any:
        """Let a number receive your messages again."""
        params, options = split_options(params)
        return cls._call("DELETE", f"{cls.PATH}/opt_outs/{quote_id(opt_out_id)}", params, options)

    @classmethod
    def rotate_callback_secret(cls, **params: Any) -> Any:
        """A new ``whsec_…`` secret that signs your callback URLs (on the answer only; the
        previous one keeps signing for a day). Verify callbacks like webhooks."""
        params, options = split_options(params)
        return cls._call("POST", f"{cls.PATH}/callback_secret", params, options)
