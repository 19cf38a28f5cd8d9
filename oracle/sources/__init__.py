"""Block-data sources: stage 1 of the pipeline (fetch + validate -> ``bitcoin.Header``).

``base`` defines the one interface every source implements (``HeaderSource``)
and the typed values they return; ``bitcoind`` and ``rest`` are the adapters;
``checks`` holds the strict parsing shared by all of them.
"""
