"""Pure Bitcoin consensus arithmetic: no I/O, no asyncio, no database, no web3."""
