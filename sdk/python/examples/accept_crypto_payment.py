"""Accept a crypto payment: create an intent, choose crypto, show where to pay, wait for it.

    PAYLOOM_API_KEY=sk_test_… python accept_crypto_payment.py --amount 1000000 --currency ETH
    # on the local stack, let the example pay itself from an anvil account:
    PAYLOOM_API_KEY=sk_test_… python accept_crypto_payment.py --pay-from-anvil

Amounts are integers in the currency's minor units at its ledger scale (ETH is held in gwei:
1000000 = 0.001 ETH). The intent's ``crypto`` block says what to send on chain, in the asset's
base units (wei for ETH), as a decimal string, and the EIP-681 URI a wallet understands.

Environment: PAYLOOM_API_KEY (required), PAYLOOM_API_BASE (default http://127.0.0.1:8000),
PAYLOOM_CHAIN_RPC_URL (default http://127.0.0.1:8545, for --pay-from-anvil).
The last line printed is ``payment_intent=<id> status=<status>``; exit code 0 on success.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import payloom

# anvil's default account 1 ("test test … junk" mnemonic): a public, well-known TEST key that
# only ever holds play money on a local chain. Never use it anywhere else.
ANVIL_ACCOUNT_1_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
FINAL = ("succeeded", "canceled", "expired", "underpaid", "overpaid", "paid_late")


def pay_from_anvil(crypto, rpc_url: str, payer_key: str) -> str:
    """Send exactly ``amount_due`` of the asset to the deposit address; the transaction hash."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    account = w3.eth.account.from_key(payer_key)
    amount = int(crypto.amount_due)                      # exact integer base units, no floats
    tx = {"from": account.address, "chainId": int(crypto.chain_id), "gas": 120_000,
          "nonce": w3.eth.get_transaction_count(account.address, "pending"),
          "maxFeePerGas": 2 * w3.eth.gas_price + 1, "maxPriorityFeePerGas": 1}
    if crypto.token:                                     # ERC-20: transfer(address,uint256)
        data = (bytes.fromhex("a9059cbb") + bytes(12) + bytes.fromhex(crypto.address[2:])
                + amount.to_bytes(32, "big"))
        tx.update(to=Web3.to_checksum_address(crypto.token), value=0, data=data)
    else:
        tx.update(to=Web3.to_checksum_address(crypto.address), value=amount)
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt.status != 1:
        raise RuntimeError(f"the payment transaction reverted: {tx_hash.hex()}")
    return "0x" + tx_hash.hex().removeprefix("0x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--amount", type=int, default=1_000_000,
                        help="minor units of --currency (default 1000000 gwei = 0.001 ETH)")
    parser.add_argument("--currency", default="ETH")
    parser.add_argument("--network", default="anvil")
    parser.add_argument("--asset", default=None, help="what the payer sends (default: --currency)")
    parser.add_argument("--pay-from-anvil", action="store_true",
                        help="pay the intent from an anvil test account (local stack only)")
    parser.add_argument("--rpc-url", default=os.environ.get("PAYLOOM_CHAIN_RPC_URL", "http://127.0.0.1:8545"))
    parser.add_argument("--payer-key", default=os.environ.get("PAYLOOM_PAYER_KEY", ANVIL_ACCOUNT_1_KEY))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the payment")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args(argv)

    client = payloom.Client(os.environ["PAYLOOM_API_KEY"],
                            api_base=os.environ.get("PAYLOOM_API_BASE", payloom.client.DEFAULT_API_BASE))
    print(f"mode: {'live' if client.livemode else 'test'}")

    intent = client.PaymentIntent.create(amount=args.amount, currency=args.currency,
                                         payment_method_types=["crypto"],
                                         description="Payloom SDK example")
    print(f"created {intent.id}: {intent.amount} {intent.currency} (minor units), {intent.status}")

    intent.choose_crypto(network=args.network, asset=args.asset or args.currency)
    crypto = intent.crypto
    print(f"pay to:     {crypto.address} on {crypto.network} (chain {crypto.chain_id})")
    print(f"amount due: {crypto.amount_due} base units of {crypto.asset}"
          + (f" (= {crypto.amount_due_decimal})" if crypto.get("amount_due_decimal") else ""))
    print(f"EIP-681:    {crypto.uri}")
    print(f"QR code:    {client.api_base}{payloom.PaymentIntent.instance_path(intent.id)}/crypto/qr.png")

    if args.pay_from_anvil:
        print(f"paying from anvil: tx {pay_from_anvil(crypto, args.rpc_url, args.payer_key)}")

    deadline = time.monotonic() + args.timeout
    status = intent.status
    while intent.status not in FINAL and time.monotonic() < deadline:
        time.sleep(args.poll_interval)
        intent.refresh()
        if intent.status != status:
            status = intent.status
            print(f"status: {status} (received {intent.amount_received}, pending "
                  f"{intent.get('amount_pending', 0)})")
    print(f"payment_intent={intent.id} status={intent.status}")
    return 0 if intent.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
