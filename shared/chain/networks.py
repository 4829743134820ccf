"""EVM networks as configuration data: ``PAYLOOM_CHAIN_NETWORKS`` (a JSON array), never code.

Each network says where to reach it (``rpc_urls``: several, tried in order, for failover), what
it carries (native asset, ERC-20 contracts by asset code), how fast blocks come, how deep a reorg
can go, and whether it is a test-mode network (``livemode: false``: anvil, testnets) or a live
one. Test and live never share a network: an intent in test mode may only be paid on a network
with ``livemode == false``, so a test key can never produce a live payment.

Locally the stack deploys the tokens to anvil (``infra/local/chain_setup.py``) and sets the
variable; when it is unset outside production, one anvil network at ``PAYLOOM_CHAIN_RPC_URL``
(default ``http://127.0.0.1:8545``) with the deterministic token addresses is assumed, so a unit
or a developer's shell works without ceremony. In production the variable is required
(see docs/decisions/0032-chain-foundation.md for Mezo, Selendra and an L2).
"""
from __future__ import annotations

import os
from typing import Any

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.ledger.assets import ASSETS
from shared.platform.errors import InvalidRequest

ANVIL_CHAIN_ID = 31337
DEFAULT_ANVIL_RPC_URL = "http://127.0.0.1:8545"
# CREATE addresses of anvil's default account 0 at nonces 0, 1, 2 (infra/local/chain_setup.py
# deploys USDC, MUSD, PPT in that order on a fresh chain; tests/chain checks these constants).
ANVIL_TOKEN_ADDRESSES = {
    "USDC": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "MUSD": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "PPT": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
}


class Network(BaseModel):
    """One EVM chain Payloom accepts payments on."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,31}$")
    chain_id: int = Field(gt=0)
    livemode: bool = False
    rpc_urls: tuple[str, ...] = Field(min_length=1)       # failover order
    native_asset: str = "ETH"
    tokens: dict[str, str] = Field(default_factory=dict)  # asset code -> contract address
    block_time_seconds: float = Field(default=2.0, gt=0)
    # Blocks whose hashes the watcher keeps to detect a reorg; a block deeper than this is
    # treated as final (no confirmation policy may ask for more).
    reorg_depth: int = Field(default=12, ge=1, le=1024)
    max_log_range: int = Field(default=1000, ge=1)         # blocks per eth_getLogs call
    explorer_url: str | None = None

    @field_validator("rpc_urls")
    @classmethod
    def _urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not url.startswith(("http://", "https://", "ws://", "wss://")):
                raise ValueError(f"rpc url must be http(s) or ws(s): {url.split('?')[0]!r}")
        return urls

    @field_validator("native_asset")
    @classmethod
    def _native(cls, code: str) -> str:
        asset = ASSETS.get(code)
        if asset is None or asset.onchain_decimals is None:
            raise ValueError(f"native asset {code!r} is not an on-chain asset of the ledger")
        return code

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, tokens: dict[str, str]) -> dict[str, str]:
        out = {}
        for code, address in tokens.items():
            asset = ASSETS.get(code)
            if asset is None or asset.onchain_decimals is None:
                raise ValueError(f"token {code!r} is not an on-chain asset of the ledger")
            if not is_address(address):
                raise ValueError(f"token {code}: not an address: {address!r}")
            out[code] = to_checksum_address(address)
        if len(set(out.values())) != len(out):
            raise ValueError("two assets share one contract address")
        return out

    @model_validator(mode="after")
    def _native_not_token(self) -> Network:
        if self.native_asset in self.tokens:
            raise ValueError(f"{self.native_asset} is the native asset, not a token")
        return self

    @property
    def assets(self) -> tuple[str, ...]:
        """Every asset payable on this network: the native one first, then the tokens."""
        return (self.native_asset, *sorted(self.tokens))

    def supports(self, asset: str) -> bool:
        return asset == self.native_asset or asset in self.tokens

    def token_address(self, asset: str) -> str | None:
        """The contract of ``asset`` here; ``None`` for the native asset; 400 if unsupported."""
        if asset == self.native_asset:
            return None
        if asset not in self.tokens:
            raise InvalidRequest(f"{asset} is not payable on network {self.name}; "
                                 f"supported: {', '.join(self.assets)}.",
                                 code="asset_unsupported_on_network", param="asset")
        return self.tokens[asset]

    def asset_for_token(self, address: str) -> str | None:
        """The asset code of a token contract on this network (``None`` if not one of ours)."""
        wanted = address.lower()
        return next((code for code, a in self.tokens.items() if a.lower() == wanted), None)

    def explorer_tx_url(self, tx_hash: str) -> str | None:
        return f"{self.explorer_url.rstrip('/')}/tx/{tx_hash}" if self.explorer_url else None

    def explorer_address_url(self, address: str) -> str | None:
        return f"{self.explorer_url.rstrip('/')}/address/{address}" if self.explorer_url else None


class ChainNetworks(BaseSettings):
    """``PAYLOOM_CHAIN_NETWORKS``: a JSON array of ``Network`` objects."""
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_CHAIN_", extra="ignore")

    networks: tuple[Network, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> ChainNetworks:
        names = [n.name for n in self.networks]
        ids = [n.chain_id for n in self.networks]
        if len(set(names)) != len(names):
            raise ValueError("network names must be unique")
        if len(set(ids)) != len(ids):
            raise ValueError("chain ids must be unique")
        return self

    def get(self, name: str) -> Network:
        for network in self.networks:
            if network.name == name:
                return network
        raise InvalidRequest(f"Unknown network {name!r}; configured: "
                             f"{', '.join(n.name for n in self.networks) or 'none'}.",
                             code="network_unknown", param="network")

    def for_chain(self, chain_id: int) -> Network:
        for network in self.networks:
            if network.chain_id == chain_id:
                return network
        raise InvalidRequest(f"No network with chain id {chain_id} is configured.",
                             code="network_unknown", param="chain_id")

    def for_mode(self, livemode: bool) -> tuple[Network, ...]:
        """The networks a payment in this mode may use (test intents: test networks only)."""
        return tuple(n for n in self.networks if n.livemode == livemode)


def default_local_network() -> Network:
    return Network(name="anvil", chain_id=ANVIL_CHAIN_ID, livemode=False,
                   rpc_urls=(os.environ.get("PAYLOOM_CHAIN_RPC_URL") or DEFAULT_ANVIL_RPC_URL,),
                   native_asset="ETH", tokens=dict(ANVIL_TOKEN_ADDRESSES),
                   block_time_seconds=1.0, reorg_depth=12)


def load_networks(*, production: bool = False, env: dict[str, str] | None = None) -> ChainNetworks:
    """Parse the configuration; outside production an unset variable means local anvil."""
    raw = (env if env is not None else os.environ).get("PAYLOOM_CHAIN_NETWORKS")
    if raw is None or not raw.strip():
        if production:
            raise RuntimeError("PAYLOOM_CHAIN_NETWORKS is required in production")
        return ChainNetworks(networks=(default_local_network(),))
    import json
    return ChainNetworks.model_validate({"networks": json.loads(raw)})


def chain_networks(deps: Any) -> ChainNetworks:
    """The configured networks, once per ``deps`` (tests inject ``deps.extras["chain.networks"]``)."""
    return deps.get("chain.networks",
                    lambda: load_networks(production=deps.settings.is_production))


def get_network(deps: Any, name: str) -> Network:
    return chain_networks(deps).get(name)


def network_for_chain(deps: Any, chain_id: int) -> Network:
    return chain_networks(deps).for_chain(chain_id)
