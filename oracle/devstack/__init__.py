"""``bme-oracle dev``: a local regtest bitcoind and anvil (``nodes``) and the stack on them (``stack``)."""
