"""Position-token series on chain: the BmeMarket contract's bindings (create, mint, redeem,
settle, claim). The index that settles them is the oracle's; see DESIGN.md "BmeMarket"."""
