"""Merchants, their projects, members and API keys (``/v1/merchants``).

Creating merchants, projects and keys is done by a signed-in user (an access token with
``merchant=``); a merchant's API key can read its merchant, projects and keys. Calls under one
merchant take it from ``merchant=`` or the client's ``merchant`` (it is also sent as the
``Payloom-Merchant`` header, which the API requires to match the path).
"""
from __future__ import annotations

from typing import Any, List, Optional

from payloom.client import RequestOptions, quote_id, split_options
from payloom.objects import ListObject, PayloomObject, register
from payloom.resources._base import APIResource, Createable, Listable, Retrievable, Updateable, action


@register
class Merchant(Createable, Retrievable, Listable, Updateable):
    OBJECT_NAME = "merchant"
    PATH = "/v1/merchants"

    id: str
    business_name: str
    country: str
    settlement_asset: str
    status: str

    retrieve_settings = action("GET", "/settings", refresh=False,
                               doc="Payment settings with their defaults.")
    modify_settings = action("POST", "/settings", refresh=False,
                             doc="Change payment settings (omitted fields keep their value).")
    retrieve_branding = action("GET", "/branding", refresh=False,
                               doc="The hosted page's branding and default success/cancel URLs.")
    modify_branding = action("POST", "/branding", refresh=False,
                             doc="Change the branding (a signed-in admin): display_name, logo "
                                 "(base64 or a data: URI of a PNG, WebP or SVG ≤ 16 KiB), "
                                 "brand_color, success_url, cancel_url, support_email, "
                                 "support_url; null clears a field.")

    @classmethod
    def list_members(cls, id: str, **params: Any) -> ListObject:
        params, options = split_options(params)
        return cls._list(f"{cls.instance_path(id)}/members", params, options)


@register
class MerchantSettings(PayloomObject):
    OBJECT_NAME = "merchant_settings"


@register
class MerchantBranding(PayloomObject):
    OBJECT_NAME = "merchant_branding"

    merchant: str
    display_name: Optional[str]
    logo: Optional[str]
    brand_color: Optional[str]
    brand_text_color: Optional[str]
    success_url: Optional[str]
    cancel_url: Optional[str]
    support_email: Optional[str]
    support_url: Optional[str]


@register
class MerchantMember(PayloomObject):
    OBJECT_NAME = "merchant_member"


class _UnderMerchant(APIResource):
    """A collection under ``/v1/merchants/{merchant}``."""
    SUFFIX = ""

    @classmethod
    def _scope(cls, params: dict) -> "tuple[dict, RequestOptions, str]":
        params, options = split_options(params)
        merchant = options.merchant or cls._client_for().merchant
        if not merchant:
            raise ValueError(f"{cls.__name__} calls need merchant= (or a client with merchant=)")
        if options.merchant is None:
            options = options.overridden_by(RequestOptions(merchant=merchant))
        return params, options, f"/v1/merchants/{quote_id(merchant)}{cls.SUFFIX}"

    @classmethod
    def _at(cls, method: str, suffix: str, params: dict) -> Any:
        params, options, base = cls._scope(params)
        if method == "LIST":
            return cls._list(base + suffix, params, options)
        return cls._call(method, base + suffix, params, options)

    @classmethod
    def retrieve(cls, id: str, **params: Any) -> Any:
        return cls._at("GET", f"/{quote_id(id)}", params)

    @classmethod
    def list(cls, **params: Any) -> ListObject:
        return cls._at("LIST", "", params)


@register
class Project(_UnderMerchant):
    """A merchant's integration in one mode (test or live); its API keys belong to it."""
    OBJECT_NAME = "project"
    SUFFIX = "/projects"

    id: str
    merchant: str
    name: str
    livemode: bool

    @classmethod
    def create(cls, **params: Any) -> "Project":
        return cls._at("POST", "", params)

    @classmethod
    def modify(cls, id: str, **params: Any) -> "Project":
        return cls._at("POST", f"/{quote_id(id)}", params)

    @classmethod
    def delete(cls, id: str, **params: Any) -> PayloomObject:
        """Delete the project and revoke its keys."""
        return cls._at("DELETE", f"/{quote_id(id)}", params)

    @classmethod
    def create_api_key(cls, id: str, **params: Any) -> "ApiKey":
        """A key of this project (``scopes``, ``name``); its ``secret`` is on this answer only."""
        return cls._at("POST", f"/{quote_id(id)}/api_keys", params)


@register
class ApiKey(_UnderMerchant):
    """A merchant's API key (never its secret, except when created or rolled)."""
    OBJECT_NAME = "api_key"
    SUFFIX = "/api_keys"

    id: str
    prefix: str
    scopes: List[str]
    livemode: bool
    status: str
    project: Optional[str]
    secret: Optional[str]

    @classmethod
    def roll(cls, id: str, **params: Any) -> "ApiKey":
        """A new secret; the old one works for ``expires_in_seconds`` more (0: revoked now)."""
        return cls._at("POST", f"/{quote_id(id)}/roll", params)

    @classmethod
    def revoke(cls, id: str, **params: Any) -> "ApiKey":
        return cls._at("DELETE", f"/{quote_id(id)}", params)
