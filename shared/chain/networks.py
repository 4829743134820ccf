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

``custody`` (optional, ADR 0038) says what the sweeper may do on a network: the smallest amount
worth sweeping per asset (``min_sweep``), the most the hot wallet may hold per asset
(``hot_caps``) and the cold, watch-only address the excess goes to (``cold_address``, EIP-55
checksummed: a typo in it would send money nobody can spend). Amounts are decimal strings at the
asset's ledger scale (``"50000.00"`` USDC), parsed exactly, never through floats.
"""
from __future__ import annotations

import os
from typing import Any

from eth_utils import is_address, is_checksum_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.ledger import assets as assets_mod
from shared.ledger.assets import ASSETS
from shared.platform.errors import InvalidRequest, PayloomError

ANVIL_CHAIN_ID = 31337
DEFAULT_ANVIL_RPC_URL = "http://127.0.0.1:8545"
# CREATE addresses of anvil's default account 0 at nonces 0, 1, 2 (infra/local/chain_setup.py
# deploys USDC, MUSD, PPT in that order on a fresh chain; tests/chain checks these constants).
ANVIL_TOKEN_ADDRESSES = {
    "USDC": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "MUSD": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "PPT": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
}


def _ledger_units(asset: str, value: str, *, what: str) -> int:
    """A configured decimal amount in ledger units (exact; a bad string is a config error)."""
    if ASSETS.get(asset) is None or ASSETS[asset].onchain_decimals is None:
        raise ValueError(f"{what}: {asset!r} is not an on-chain asset of the ledger")
    try:
        return assets_mod.parse_decimal(str(value), asset)
    except PayloomError as exc:
        if exc.code == "amount_not_positive":
            return 0
        raise ValueError(f"{what} {asset}: not a decimal amount at the asset's scale: "
                         f"{value!r}") from None


class Custody(BaseModel):
    """What sweeping and the hot wallet's cap may do on one network (ADR 0038)."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    cold_address: str | None = None                     # watch-only: Payloom holds no key
    hot_caps: dict[str, str] = Field(default_factory=dict)   # asset -> decimal amount
    min_sweep: dict[str, str] = Field(default_factory=dict)  # asset -> decimal amount
    # Above the cap the hot wallet sends down to cap × target_bps / 10,000 (not to the cap
    # itself: a hot wallet refilled by every sweep would otherwise send to cold every run).
    hot_target_bps: int = Field(default=8000, ge=0, le=10_000)

    @field_validator("cold_address")
    @classmethod
    def _cold(cls, address: str | None) -> str | None:
        if address is None:
            return None
        if not is_address(address) or not is_checksum_address(address):
            raise ValueError("cold_address must be an EIP-55 checksummed address")
        if int(address, 16) == 0:
            raise ValueError("cold_address must not be the zero address")
        return address

    @field_validator("hot_caps", "min_sweep")
    @classmethod
    def _amounts(cls, amounts: dict[str, str], info) -> dict[str, str]:
        for asset, value in amounts.items():
            units = _ledger_units(asset, value, what=info.field_name)
            if info.field_name == "hot_caps" and units <= 0:
                raise ValueError(f"hot_caps {asset}: a cap must be positive")
        return dict(amounts)

    @model_validator(mode="after")
    def _cap_needs_cold(self) -> Custody:
        if self.hot_caps and self.cold_address is None:
            raise ValueError("hot_caps need a cold_address to send the excess to")
        return self

    def _base(self, table: dict[str, str], asset: str) -> int | None:
        if asset not in table:
            return None
        return int(assets_mod.to_onchain(_ledger_units(asset, table[asset], what="custody"), asset))

    def cap(self, asset: str) -> int | None:
        """The hot wallet's cap for ``asset`` in on-chain base units (None: no cap)."""
        return self._base(self.hot_caps, asset)

    def target(self, asset: str) -> int | None:
        """Where a transfer to cold brings the hot balance down to (base units)."""
        cap = self.cap(asset)
        return None if cap is None else cap * self.hot_target_bps // 10_000

    def min_sweep_of(self, asset: str) -> int:
        """The smallest balance worth sweeping, base units (0: anything above the gas)."""
        return self._base(self.min_sweep, asset) or 0


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
    custody: Custody | None = None                         # sweeping and the hot cap (ADR 0038)

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

    @model_validator(mode="after")
    def _custody_assets(self) -> Network:
        if self.custody is None:
            return self
        for asset in (*self.custody.hot_caps, *self.custody.min_sweep):
            if not self.supports(asset):
                raise ValueError(f"custody names {asset}, which network {self.name} does not carry")
        cold = (self.custody.cold_address or "").lower()
        if cold and cold in {a.lower() for a in self.tokens.values()}:
            raise ValueError("cold_address is a token contract")
        return self

    @property
    def custody_rules(self) -> Custody:
        """The network's custody block, or the defaults (no cap, no minimum)."""
        return self.custody or Custody()

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
