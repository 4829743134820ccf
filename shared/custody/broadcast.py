"""Broadcast several signed transactions in ONE JSON-RPC batch.

Why together: the hot wallet's top-ups of a batch carry consecutive nonces; sent in one request
they reach the node's pool together and are mined in the same block. Why not
``RpcClient.batch``: a node answers a transaction it already has ("already known", "nonce too
low") with -32003, which the client counts as a node failure, while here it is the answer to
read (the same reasoning as ``shared.refunds.crypto.broadcast``, whose classification is used).
Only a transport error or a non-JSON answer moves on to the next endpoint.
"""
from __future__ import annotations

from typing import Any

import requests

from shared.platform import logs
from shared.refunds.crypto import classify_broadcast_error

_log = logs.get_logger(__name__)


def broadcast_many(rpc, raws: list[str]) -> list[str]:
    """One outcome per raw transaction: "sent", "known", "nonce_used", "error" or
    "unavailable" (no endpoint answered; the poll sends the same bytes again)."""
    if not raws:
        return []
    payload = [{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]}
               for i, raw in enumerate(raws)]
    for endpoint in rpc.endpoints:
        try:
            resp = rpc.session.post(endpoint.url, json=payload, timeout=rpc.timeout)
            answer = resp.json() if resp.status_code == 200 else None
        except (requests.RequestException, ValueError):
            answer = None
        if not isinstance(answer, list):
            continue
        by_id = {a.get("id"): a for a in answer if isinstance(a, dict)}
        out = []
        for i in range(len(raws)):
            item = by_id.get(i) or {"error": {"message": "no answer"}}
            out.append(_outcome(rpc.network, item))
        return out
    return ["unavailable"] * len(raws)


def _outcome(network: str, item: dict[str, Any]) -> str:
    if item.get("error") is None:
        return "sent"
    err = item["error"] if isinstance(item["error"], dict) else {"message": str(item["error"])}
    kind = classify_broadcast_error(str(err.get("message", "")))
    if kind == "error":
        logs.log(_log, 30, "custody broadcast refused", network=network, code=err.get("code"),
                 reason=str(err.get("message", ""))[:200])
    return kind
