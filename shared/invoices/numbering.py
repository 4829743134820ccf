"""Invoice numbers: a per-merchant, per-mode sequence with no gaps.

Gap-free numbering is a legal requirement in many jurisdictions, so a number is taken from a
counter document ``invoice_counters/{mch}:{live|test}`` read and written IN the unit that
finalizes the invoice: the number exists if and only if the finalization commits, and two
finalizations at once both read the same counter version, one commit wins and the other re-runs
with the next number. Cost: one more document in the finalization's batch read; finalizations
of one merchant serialise on the counter (about one per second sustained on production
Firestore, more in bursts) — acceptable for a human-paced operation, and the price of no gaps.

Format: ``{PREFIX}-{seq:04d}``, the prefix the first 8 characters of the merchant id's random
part, upper-cased; test-mode numbers start ``TEST-`` so they never look like live ones.
"""
from __future__ import annotations

COLLECTION = "invoice_counters"


def counter_ref(db, merchant_id: str, livemode: bool):
    return db.collection(COLLECTION).document(f"{merchant_id}:{'live' if livemode else 'test'}")


def prefix(merchant_id: str) -> str:
    return merchant_id.split("_", 1)[-1][:8].upper()


def format_number(merchant_id: str, livemode: bool, seq: int) -> str:
    return f"{'' if livemode else 'TEST-'}{prefix(merchant_id)}-{seq:04d}"


def take_next(uow, merchant_id: str, livemode: bool) -> tuple[int, str]:
    """Read the counter through ``uow`` and buffer its increment: (sequence, number)."""
    ref = counter_ref(uow.db, merchant_id, livemode)
    snap = uow.get(ref)
    seq = int(snap.to_dict().get("last", 0)) + 1 if snap.exists else 1
    uow.set(ref, {"merchant_id": merchant_id, "livemode": livemode, "last": seq,
                  "updated_at": uow.now})
    return seq, format_number(merchant_id, livemode, seq)
