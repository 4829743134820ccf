"""Wallet links: ``user_wallets/{wal_…}`` = ``{id, user_id, address (EIP-55), chain_id, did,
kind ("eoa" | "contract"), created_at}``, id derived from the lower-cased address.

This module owns the collection: the SIWE flows (``web3.wallets``) write it, and DIDs,
the profile and "ways in" read it through the functions here. Which user holds an address is
the directory's ``wallet:`` handle, claimed in the same commit as the link.
"""
from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address
from google.cloud import firestore

from shared.identity.resources import WalletLink
from shared.platform.clock import rfc3339
from shared.platform.ids import derived_id

WALLETS = "user_wallets"


def pkh_did(chain_id: int, address: str) -> str:
    return f"did:pkh:eip155:{chain_id}:{to_checksum_address(address)}"


def wallet_resource(doc: dict[str, Any]) -> WalletLink:
    return WalletLink(id=doc["id"], address=doc["address"], chain_id=doc["chain_id"],
                      did=doc["did"], kind=doc["kind"], created=rfc3339(doc["created_at"]))


def wallet_ref(db, address: str):
    return db.collection(WALLETS).document(derived_id("wal", address.lower()))


def wallets_query(db, user_id: str):
    """The user's wallet links (callers add their own ``limit``)."""
    return db.collection(WALLETS).where(filter=firestore.FieldFilter("user_id", "==", user_id))
