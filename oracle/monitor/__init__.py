"""Monitoring: Prometheus metrics, webhook alerts, readiness and the next-retarget estimate.

The last stage of DESIGN.md's flow: it watches the others (sources, cross-check,
store, publisher) and reports to operators; it never changes what is published.
"""
