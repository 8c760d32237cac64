"""Authorization through two independent clients against the real broker
(`--authorizer acl --super-users User:alice`).

confluent-kafka (librdkafka's admin API), as alice, creates a topic and a
SCRAM credential for bob, then manages bob's ACLs (CreateAcls, DescribeAcls,
DeleteAcls); kafka-python (its own protocol code), as bob, is refused
before the ACLs with Kafka's errors, then produces and consumes in a group
once allowed, and is refused again when the ACL is deleted.

Usage: acls_clients.py SASL_PLAINTEXT_ADDR
Prints "acls clients: ok" when every check held.
"""

import sys

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from scram_admin import alice_admin, say, wait_all

addr = sys.argv[1]
admin = alice_admin(addr)
wait_all(admin.create_topics([NewTopic("py-acl", 1, 1)]))
wait_all(
    admin.alter_user_scram_credentials(
        [
            UserScramCredentialUpsertion(
                "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"bob-secret"
            )
        ]
    )
)
say("confluent-kafka: topic py-acl and bob's credential made by alice")

BOB = dict(
    bootstrap_servers=addr,
    security_protocol="SASL_PLAINTEXT",
    sasl_mechanism="SCRAM-SHA-256",
    sasl_plain_username="bob",
    sasl_plain_password="bob-secret",
    request_timeout_ms=10000,
)


def produce(value, idempotent=False):
    producer = KafkaProducer(max_block_ms=10000, enable_idempotence=idempotent, **BOB)
    try:
        return producer.send("py-acl", value=value, partition=0).get(timeout=15)
    finally:
        producer.close()


def consume(group):
    """Reads py-acl in `group` until it sees b"allowed"."""
    consumer = KafkaConsumer(
        "py-acl",
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15000,
        **BOB,
    )
    try:
        for record in consumer:
            if record.value == b"allowed":
                return True
        return False
    finally:
        consumer.close()


def refused(what, error, call):
    try:
        call()
    except error:
        say(f"kafka-python: {what} refused ({error.__name__})")
        return
    raise AssertionError(f"{what}: not refused")


refused("produce without ACLs", TopicAuthorizationFailedError, lambda: produce(b"denied"))

acl = lambda rt, name, pattern, op: AclBinding(  # noqa: E731
    rt, name, pattern, "User:bob", "*", op, AclPermissionType.ALLOW
)
wait_all(
    admin.create_acls(
        [
            acl(ResourceType.TOPIC, "py-", ResourcePatternType.PREFIXED, AclOperation.WRITE),
            acl(ResourceType.TOPIC, "py-acl", ResourcePatternType.LITERAL, AclOperation.READ),
            acl(ResourceType.GROUP, "py-group", ResourcePatternType.LITERAL, AclOperation.READ),
        ]
    )
)
everything = AclBindingFilter(
    ResourceType.ANY,
    None,
    ResourcePatternType.ANY,
    None,
    None,
    AclOperation.ANY,
    AclPermissionType.ANY,
)
described = admin.describe_acls(everything).result(timeout=20)
assert len(described) == 3, described
say("confluent-kafka: three ACLs for bob created and described")

meta = produce(b"allowed", idempotent=True)
say(f"kafka-python: produce allowed by a prefixed ACL (offset {meta.offset})")
assert consume("py-group"), "bob read nothing in py-group"
say("kafka-python: consumed in group py-group")
refused("a group without ACLs", GroupAuthorizationFailedError, lambda: consume("other-group"))

deleted = admin.delete_acls(
    [
        AclBindingFilter(
            ResourceType.TOPIC,
            "py-",
            ResourcePatternType.PREFIXED,
            "User:bob",
            None,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
    ]
)
for f in deleted.values():
    assert len(f.result(timeout=20)) == 1
say("confluent-kafka: the prefixed WRITE deleted")
refused("produce after DeleteAcls", TopicAuthorizationFailedError, lambda: produce(b"again"))
# An idempotent producer with WRITE on no topic and no IDEMPOTENT_WRITE on
# the cluster is refused its producer id (KIP-679), as Kafka refuses it.
try:
    produce(b"again", idempotent=True)
    raise AssertionError("idempotent produce after DeleteAcls: not refused")
except KafkaError as e:
    assert "Error 31" in str(e) or isinstance(e, ClusterAuthorizationFailedError), e
    say("kafka-python: idempotent producer refused its id (CLUSTER_AUTHORIZATION_FAILED)")
print("acls clients: ok")
