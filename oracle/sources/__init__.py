"""Block-data sources: stage 1 of the pipeline (fetch + validate -> ``bitcoin.Header``).

* ``types``          I/O-free: ``HeaderSource``, ``Tip``, ``Observation``, ``SourceFailure``
                     (the typed source errors live in ``oracle.errors``)
* ``factory``        ``build_sources(config)``: the configured adapters
* ``checks``         strict parsing shared by every adapter; ``upstream`` excerpts, elided
                     from public answers
* ``boundedjson``    ``loads_bounded``: JSON from outside, nesting and numbers bounded (no
                     crash, no stall); ``restore_recursion_limit``
* ``boundedweb3``    web3's HTTP provider with bounded replies (for the EVM RPC)
* ``rpc``, ``bitcoind``  bitcoind: JSON-RPC (own batches) off the event loop + ZMQ ``hashblock``
* ``rest``           HTTP client for public APIs (timeouts, retries, 429, size cap, rate limit)
* ``esplora``, ``blockchain_com``  the two public-API adapters
* ``checkpoints``    the bundled mainnet headers (epoch boundaries to 832,608, retargets to
                     878,976) and bits (to epoch 473), served as a source
"""
