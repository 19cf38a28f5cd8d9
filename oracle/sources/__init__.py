"""Block-data sources: stage 1 of the pipeline (fetch + validate -> ``bitcoin.Header``).

* ``base``           the ``HeaderSource`` protocol, ``Tip``/``Observation``/``SourceFailure``,
                     the typed source errors, ``build_sources(config)``
* ``checks``         strict parsing shared by every adapter
* ``rpc``, ``bitcoind``  bitcoind: JSON-RPC (own batches) off the event loop + ZMQ ``hashblock``
* ``rest``           HTTP client for public APIs (timeouts, retries, 429, size cap, rate limit)
* ``esplora``, ``blockchain_com``  the two public-API adapters
"""
