"""Web3 identity: Sign-In with Ethereum, linked wallets, DIDs, and the test contract wallet."""
