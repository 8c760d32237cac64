"""Security through two independent clients against the real broker.

confluent-kafka (librdkafka's admin API) manages SCRAM credentials
(AlterUserScramCredentials, DescribeUserScramCredentials) as the
bootstrapped user; kafka-python (a pure-Python client with its own SASL,
SCRAM and TLS code) then uses them: SCRAM-SHA-256 over SASL_SSL, PLAIN over
SASL_PLAINTEXT, a client certificate over SSL, a wrong password, and a
credential deleted.

Usage: security_clients.py SASL_PLAINTEXT_ADDR SASL_SSL_ADDR SSL_ADDR CA CERT KEY
Prints "security clients: ok" when every check held.
"""

import logging
import sys

from scram_admin import alice_admin, say, wait_all

from confluent_kafka.admin import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

sasl_plaintext, sasl_ssl, ssl_addr, ca, cert, key = sys.argv[1:7]


def round_trip(topic, value, **settings):
    """Produces value with kafka-python and reads it back at its offset."""
    producer = KafkaProducer(
        bootstrap_servers=settings.pop("bootstrap"),
        request_timeout_ms=10000,
        max_block_ms=10000,
        **settings,
    )
    meta = producer.send(topic, value=value, partition=0).get(timeout=15)
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=producer.config["bootstrap_servers"],
        enable_auto_commit=False,
        consumer_timeout_ms=10000,
        **settings,
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, meta.offset)
    for record in consumer:
        consumer.close()
        assert record.value == value, record
        return
    raise AssertionError(f"nothing read back of {value!r}")


def scram(user, password, mechanism="SCRAM-SHA-256"):
    return dict(
        bootstrap=sasl_ssl,
        security_protocol="SASL_SSL",
        ssl_cafile=ca,
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=password,
    )


class Captured(logging.Handler):
    """kafka-python's log records, where its connection errors show."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def refused(settings):
    """The broker answers SaslAuthenticate with SASL_AUTHENTICATION_FAILED
    (58); kafka-python logs it and keeps retrying until its bootstrap
    timeout, so the answers are looked for in its log."""
    captured = Captured()
    logger = logging.getLogger("kafka")
    logger.addHandler(captured)
    settings = dict(settings)
    try:
        KafkaAdminClient(
            bootstrap_servers=settings.pop("bootstrap"),
            bootstrap_timeout_ms=8000,
            **settings,
        )
        raise AssertionError(f"accepted: {settings}")
    except KafkaError:
        pass
    finally:
        logger.removeHandler(captured)
    # Every attempt must end with the answer read, not a lost connection:
    # the broker lingers until the client closes (connection.rs).
    lost = [line for line in captured.lines if "Connection lost" in line]
    assert lost and all("Error 58" in line for line in lost), captured.lines
    return "SASL_AUTHENTICATION_FAILED"


a = alice_admin(sasl_plaintext)
wait_all(
    a.alter_user_scram_credentials(
        [
            UserScramCredentialUpsertion(
                "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"bob-secret"
            )
        ]
    )
)
described = a.describe_user_scram_credentials(["bob"])
info = described["bob"].result(timeout=20)
mechanisms = [(c.mechanism, c.iterations) for c in info.scram_credential_infos]
assert mechanisms == [(ScramMechanism.SCRAM_SHA_256, 4096)], mechanisms
say("confluent-kafka: bob's SCRAM-SHA-256 credential set and described")

round_trip("py-security", b"scram over tls", **scram("bob", "bob-secret"))
say("kafka-python: SCRAM-SHA-256 over SASL_SSL")
round_trip(
    "py-security",
    b"plain",
    bootstrap=sasl_plaintext,
    security_protocol="SASL_PLAINTEXT",
    sasl_mechanism="PLAIN",
    sasl_plain_username="bob",
    sasl_plain_password="bob-secret",
)
say("kafka-python: PLAIN over SASL_PLAINTEXT")
round_trip(
    "py-security",
    b"mtls",
    bootstrap=ssl_addr,
    security_protocol="SSL",
    ssl_cafile=ca,
    ssl_certfile=cert,
    ssl_keyfile=key,
)
say("kafka-python: client certificate over SSL")
round_trip("py-security", b"scram-512", **scram("alice", "alice-secret", "SCRAM-SHA-512"))
say("kafka-python: SCRAM-SHA-512 over SASL_SSL")

e = refused(scram("bob", "not-bobs"))
say(f"kafka-python: wrong password refused ({e})")
e = refused(scram("nobody", "bob-secret"))
say(f"kafka-python: unknown user refused ({e})")

wait_all(
    a.alter_user_scram_credentials(
        [UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)]
    )
)
e = refused(scram("bob", "bob-secret"))
say(f"kafka-python: deleted credential refused ({e})")
print("security clients: ok")
