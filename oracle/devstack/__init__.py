"""``bme-oracle dev``: local regtest bitcoind and anvil (``nodes``) and the stack on them."""
