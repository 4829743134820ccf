"""M-of-N approval rules (pure): who has voted, whether the threshold is met or unreachable.

Safe's model, adapted to an off-chain flow recorded in the audit log:

- the proposer's request is its first approval; each custodian counts ONCE (a second approval
  by the same custodian changes nothing), and only custodians who are approvers NOW count
  (removing a custodian from the configuration withdraws the weight of their pending votes);
- one vote per custodian: whoever approved cannot reject afterwards, nor the reverse
  (409 ``already_voted``); changing one's mind is the proposer's cancel;
- no veto: a rejection is recorded and audited, and the withdrawal is canceled only when the
  rejections leave too few custodians to ever reach M (N − rejecting < M), which is when a
  Safe transaction could never collect its signatures either. The proposer may cancel their
  own withdrawal until it is signed;
- votes are open until the approval deadline (``approval_ttl_seconds``, 24 h by default).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.platform.errors import Conflict


class AlreadyVoted(Conflict):
    code = "already_voted"


def voters(votes: Iterable[dict[str, Any]]) -> list[str]:
    """Distinct custodians in vote order."""
    return list(dict.fromkeys(v["custodian"] for v in votes))


def counted(votes: Iterable[dict[str, Any]], approvers: Iterable[str]) -> int:
    """How many distinct CURRENT approvers cast these votes."""
    current = set(approvers)
    return sum(1 for c in voters(votes) if c in current)


def has_voted(doc: dict[str, Any], custodian: str) -> str | None:
    """"approved", "rejected" or None."""
    if custodian in voters(doc.get("approvals") or ()):
        return "approved"
    if custodian in voters(doc.get("rejections") or ()):
        return "rejected"
    return None


def threshold_met(doc: dict[str, Any], approvers: Iterable[str], required: int) -> bool:
    return counted(doc.get("approvals") or (), approvers) >= required


def unreachable(doc: dict[str, Any], approvers: Iterable[str], required: int) -> bool:
    """True when the custodians who have not rejected can no longer supply ``required``
    approvals (the rejections make it impossible)."""
    approvers = list(approvers)
    rejecting = set(voters(doc.get("rejections") or ())) & set(approvers)
    return len(approvers) - len(rejecting) < required


def add_vote(votes: list[dict[str, Any]], custodian: str, at, reason: str | None = None
             ) -> list[dict[str, Any]]:
    vote = {"custodian": custodian, "at": at}
    if reason:
        vote["reason"] = reason
    return [*votes, vote]
