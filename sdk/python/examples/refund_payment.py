"""Refund a paid payment intent, in full or in part, and wait for the refund to settle.

    PAYLOOM_API_KEY=sk_test_… python refund_payment.py pi_… --amount 400000 --address 0xPayer…

Wallet refunds settle at once; card refunds when the processor confirms; crypto refunds are
sent from Payloom's hot wallet to ``--address`` (the payer's address: required for crypto) and
succeed once the transaction is confirmed. ``--amount`` is in the intent's minor units
(default: everything not yet refunded).

The call is idempotent: pass ``--idempotency-key`` (for example your own refund request id) and
running the example twice refunds once. The last line printed is
``refund=<id> status=<status>``; exit code 0 when the refund succeeded.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import payloom


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("payment_intent")
    parser.add_argument("--amount", type=int, default=None)
    parser.add_argument("--address", default=None, help="crypto refunds: the payer's address")
    parser.add_argument("--reason", default="requested_by_customer",
                        choices=["duplicate", "fraudulent", "requested_by_customer", "overpayment", "other"])
    parser.add_argument("--idempotency-key", default=None)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args(argv)

    client = payloom.Client(os.environ["PAYLOOM_API_KEY"],
                            api_base=os.environ.get("PAYLOOM_API_BASE", payloom.client.DEFAULT_API_BASE))
    intent = client.PaymentIntent.retrieve(args.payment_intent)
    print(f"{intent.id}: {intent.status}, received {intent.amount_received}, refunded "
          f"{intent.amount_refunded} ({intent.currency} minor units), method {intent.method}")

    params = {"payment_intent": intent.id, "reason": args.reason}
    if args.amount is not None:
        params["amount"] = args.amount
    if args.address:
        params["address"] = args.address
    try:
        refund = client.Refund.create(**params, idempotency_key=args.idempotency_key)
    except payloom.InvalidRequestError as e:          # the API says which parameter is wrong
        print(f"refused: {e.message} (code={e.code}, param={e.param})", file=sys.stderr)
        return 2
    if refund.last_response.idempotent_replayed:
        print("(this refund was already requested with that idempotency key: same refund)")
    print(f"refund {refund.id}: {refund.amount} {refund.currency}, {refund.status}")

    deadline = time.monotonic() + args.timeout
    while refund.status == "pending" and time.monotonic() < deadline:
        time.sleep(args.poll_interval)
        refund.refresh()
        tx = refund.get("transaction")
        if tx:
            print(f"  transaction {tx.hash}: {tx.confirmations} confirmation(s)")
    if refund.status == "failed":
        print(f"failed: {refund.failure_reason}")
    print(f"intent refunded so far: {client.PaymentIntent.retrieve(intent.id).amount_refunded}")
    print(f"refund={refund.id} status={refund.status}")
    return 0 if refund.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
