"""What the security and ACL client scripts share: a progress line timed
from the start, confluent-kafka's admin client as the bootstrapped super
user alice (SCRAM-SHA-512 over SASL_PLAINTEXT), and waiting on its futures.
Imported by scripts in this directory (Python puts it on the path)."""

import time

from confluent_kafka.admin import AdminClient

START = time.monotonic()


def say(what):
    print(f"{time.monotonic() - START:6.1f}s {what}", flush=True)


def alice_admin(addr):
    return AdminClient(
        {
            "bootstrap.servers": addr,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "alice",
            "sasl.password": "alice-secret",
        }
    )


def wait_all(futures):
    for f in futures.values():
        f.result(timeout=20)
