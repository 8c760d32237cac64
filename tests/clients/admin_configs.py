"""Topic configs, DeleteRecords, DescribeLogDirs and authorized operations
(KIP-430) through two real admin clients: confluent-kafka (librdkafka) and
kafka-python (pure Python).

Run by tests/blackbox/admin_clients.rs against a fresh broker:
    admin_configs.py BOOTSTRAP
Exits non-zero with the first check that failed.
"""

import sys

import warnings

from confluent_kafka import TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)
from confluent_kafka import Producer
from kafka.admin import KafkaAdminClient

BOOTSTRAP = sys.argv[1]
# AlterConfigs is deprecated in the client, and tested here on purpose.
warnings.simplefilter("ignore", DeprecationWarning)
TIMEOUT = 20


def done(futures):
    return {k: f.result(timeout=TIMEOUT) for k, f in futures.items()}


def configs(admin, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return done(admin.describe_configs([res]))[res]


def fails(what, call):
    try:
        call()
    except Exception as e:  # the client raises KafkaException per resource
        return str(e)
    raise AssertionError(f"{what}: expected an error, got success")


admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
done(admin.create_topics([NewTopic("cfg", 2, 1)]))

# IncrementalAlterConfigs: SET two, then DELETE one, APPEND to a list.
res = ConfigResource(
    ConfigResource.Type.TOPIC,
    "cfg",
    incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ],
)
done(admin.incremental_alter_configs([res]))
got = configs(admin, "cfg")
assert got["retention.ms"].value == "3600000", got["retention.ms"]
assert got["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, got["retention.ms"].source
assert got["retention.bytes"].value == "1048576"
assert got["cleanup.policy"].value == "delete,compact", got["cleanup.policy"].value
assert got["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value

res = ConfigResource(
    ConfigResource.Type.TOPIC,
    "cfg",
    incremental_configs=[
        ConfigEntry("retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT),
    ],
)
done(admin.incremental_alter_configs([res]))
got = configs(admin, "cfg")
assert got["retention.bytes"].value == "-1", got["retention.bytes"].value
assert got["retention.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
assert got["cleanup.policy"].value == "compact"
assert got["retention.ms"].value == "3600000", "an incremental change keeps the others"

# Refused: an unknown key, a bad value, APPEND to a value that is no list.
for bad in [
    ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET),
    ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET),
    ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND),
]:
    res = ConfigResource(ConfigResource.Type.TOPIC, "cfg", incremental_configs=[bad])
    why = fails(f"setting {bad.name}", lambda: done(admin.incremental_alter_configs([res])))
    assert "INVALID_CONFIG" in why or "nvalid" in why, why

# AlterConfigs (the older API) replaces every override; a deprecated
# config Kafka still accepts (librdkafka's test 0092 sets it) is accepted.
res = ConfigResource(
    ConfigResource.Type.TOPIC,
    "cfg",
    set_config={"message.format.version": "0.10.0", "retention.ms": "7200000"},
)
done(admin.alter_configs([res]))
got = configs(admin, "cfg")
assert got["retention.ms"].value == "7200000"
assert got["message.format.version"].value == "0.10.0"
assert got["cleanup.policy"].value == "delete", "AlterConfigs replaces all overrides"

# validate_only changes nothing.
res = ConfigResource(ConfigResource.Type.TOPIC, "cfg", set_config={"retention.ms": "1"})
done(admin.alter_configs([res], validate_only=True))
assert configs(admin, "cfg")["retention.ms"].value == "7200000"

# DeleteRecords, then DescribeLogDirs (kafka-python) sees the sizes.
producer = Producer({"bootstrap.servers": BOOTSTRAP})
for i in range(100):
    producer.produce("cfg", value=b"x" * 1000, partition=i % 2)
assert producer.flush(TIMEOUT) == 0
low = done(admin.delete_records([TopicPartition("cfg", 0, 20)]))
(result,) = low.values()
assert result.low_watermark == 20, result

kp = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
(broker,) = kp.describe_log_dirs()
(logdir,) = broker["log_dirs"]
assert logdir["error_code"] == 0, logdir
assert logdir["total_bytes"] >= logdir["usable_bytes"] > 0, logdir
sizes = {
    (t["name"], p["partition_index"]): p["partition_size"]
    for t in logdir["topics"]
    for p in t["partitions"]
}
assert sizes[("cfg", 0)] > 0 and sizes[("cfg", 1)] >= 50 * 1000, sizes
kp.close()

# KIP-430: without an authorizer every operation of the resource type is
# authorized, as Kafka answers (librdkafka's test 0081: 8 topic and 7
# cluster operations); not asked, none are listed.
from confluent_kafka import TopicCollection  # noqa: E402

cluster = admin.describe_cluster(include_authorized_operations=True).result()
assert len(cluster.authorized_operations) == 7, cluster.authorized_operations
assert admin.describe_cluster().result().authorized_operations is None
topic = admin.describe_topics(
    TopicCollection(["cfg"]), include_authorized_operations=True
)["cfg"].result()
assert len(topic.authorized_operations) == 8, topic.authorized_operations
print("admin clients: ok")
