"""Compiled local test tokens (OpenZeppelin ERC-20s); see build.py."""
