"""Chain test wiring: a real anvil per test module with the test tokens deployed.

``chain`` yields a namespace (also subscriptable: ``chain["rpc_url"]``) with

- ``rpc_url``: the anvil JSON-RPC URL (a free port, chain id 31337, automine);
- ``chain_id``: 31337;
- ``tokens``: ``{"USDC": address, "MUSD": ..., "PPT": ...}`` as deployed by
  ``infra.local.chain_setup.deploy_tokens`` (OpenZeppelin ERC-20s; the deployer, account 0,
  holds the whole initial supply and owns ``mint``);
- ``accounts``: anvil's ten default accounts (``.address``, ``.key``), each with 10,000 ETH;
  account 0 deployed the tokens, so tests that need a clean nonce should pay from 1..9;
- ``networks_env``: the ``PAYLOOM_CHAIN_NETWORKS`` JSON for this anvil;
- ``w3``: a web3 client for it.

Module scope: one anvil start (< 0.5 s) and three deployments per module. Tests that move
funds should use fresh recipients (``eth_account.Account.create().address``) or snapshot with
``evm_snapshot``/``evm_revert`` so the order of tests does not matter.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

ANVIL_CHAIN_ID = 31337
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


class ChainInfo(dict):
    """A dict whose keys are also attributes (``chain.rpc_url`` or ``chain["rpc_url"]``)."""

    __getattr__ = dict.__getitem__


class AnvilAccount(tuple):
    """``(address, key)`` with names: ``acct.address``, ``acct.key`` (0x-prefixed hex)."""

    address = property(lambda self: self[0])
    key = property(lambda self: self[1])


def start_anvil(*extra_args: str):
    """Start anvil on a free port; returns ``(process, rpc_url)`` once it answers."""
    from infra.local.stack import anvil_binary, free_port

    port = free_port()
    proc = subprocess.Popen([anvil_binary(), "--host", "127.0.0.1", "--port", str(port),
                             "--chain-id", str(ANVIL_CHAIN_ID), "--silent", *extra_args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            r = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                                         "params": []}, timeout=1)
            if r.ok:
                return proc, url
        except requests.RequestException:
            pass
        if time.time() > deadline or proc.poll() is not None:
            stop_anvil(proc)
            raise RuntimeError("anvil did not start")
        time.sleep(0.05)


def stop_anvil(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def anvil_accounts(count: int = 10) -> list[AnvilAccount]:
    """anvil's default accounts: m/44'/60'/0'/0/i of the "test ... junk" mnemonic."""
    from shared.chain.hd import restore_from_mnemonic

    tree = restore_from_mnemonic(ANVIL_MNEMONIC)
    return [AnvilAccount((tree.address(i), "0x" + tree.private_key(i).hex())) for i in range(count)]


@pytest.fixture(scope="module")
def anvil_chain():
    """A bare anvil (no tokens) for this module: yields its RPC URL."""
    proc, url = start_anvil()
    yield url
    stop_anvil(proc)


@pytest.fixture(scope="module")
def chain(anvil_chain):
    """anvil with USDC, MUSD and PPT deployed (see the module docstring)."""
    from infra.local.chain_setup import deploy_tokens, local_networks_env
    from shared.adapters.evm import web3_client

    tokens = deploy_tokens(anvil_chain)
    yield ChainInfo(rpc_url=anvil_chain, chain_id=ANVIL_CHAIN_ID, tokens=tokens,
                    accounts=anvil_accounts(), w3=web3_client(anvil_chain),
                    networks_env=local_networks_env([anvil_chain], tokens))
