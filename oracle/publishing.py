"""The publisher the daemon uses: ``oracle.publish.publisher.build_publisher``, re-exported.

Kept as the single import point for ``service``, ``replay`` and ``dev`` so the
wiring of peer signatures (multi-operator) has one place to hook in.
"""

from oracle.publish.publisher import Publisher, build_publisher

__all__ = ["Publisher", "build_publisher"]
