"""EVM chain foundation: networks as configuration, ERC-20 facts, HD deposit addresses,
EIP-681 payment URIs and QR codes. See docs/decisions/0032-chain-foundation.md."""
