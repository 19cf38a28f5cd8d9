"""Monitoring: Prometheus metrics, webhook alerts, readiness and the next-retarget estimate.

``status`` computes the estimate (pure); ``chainread`` reads the chain for it.

The last stage of DESIGN.md's flow: it watches the others (sources, cross-check,
store, publisher) and reports to operators; it never changes what is published.
"""
