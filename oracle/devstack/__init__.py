"""``bme-oracle dev``: local regtest bitcoind and anvil (``nodes``), the stack on them (``stack``)."""
