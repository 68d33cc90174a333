"""Readiness probe for the test Kafka broker: one real Metadata request through aiokafka.

Usage: ``python kafka_probe.py HOST:PORT [TIMEOUT_S]``.  Exits 0 and prints the broker list as
JSON when the cluster answers with at least one broker, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiokafka.admin import AIOKafkaAdminClient


async def probe(bootstrap: str, timeout_s: float) -> dict[str, object]:
    """Return the cluster description (brokers, controller id, cluster id) of ``bootstrap``."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    async with asyncio.timeout(timeout_s):
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
        finally:
            await admin.close()
    return dict(cluster)


def main(argv: list[str]) -> int:
    """Probe the broker named on the command line; 0 when it serves metadata."""
    if len(argv) < 2:
        print("usage: kafka_probe.py HOST:PORT [TIMEOUT_S]", file=sys.stderr)
        return 2
    timeout_s = float(argv[2]) if len(argv) > 2 else 10.0
    try:
        cluster = asyncio.run(probe(argv[1], timeout_s))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
        print(f"kafka probe failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    brokers = cluster.get("brokers") or []
    print(json.dumps({"brokers": brokers, "cluster_id": cluster.get("cluster_id")}, default=str))
    return 0 if brokers else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
