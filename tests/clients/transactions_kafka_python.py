"""Transactions (KIP-98 / KIP-447) through kafka-python, a pure-Python client
written independently of the Java one, so its view of the protocol is a
second opinion on what the broker implements:
    transactions_kafka_python.py BOOTSTRAP

1. Commit, abort, commit over a 4-partition topic (partitions spread over
   shards): read_committed sees exactly the committed records, in produce
   order per partition; read_uncommitted sees everything, aborted included.
2. Consume-transform-produce, tried once and aborted, then committed:
   offsets sent with send_offsets_to_transaction become the group's committed
   offsets only when the transaction commits, and the output holds every
   input exactly once.
3. Zombie fencing: a second producer with the same transactional id aborts
   the first one's open transaction, and the first one can no longer commit.

Exits non-zero with the first check that failed; prints
"kafka-python transactions: ok" on success.
"""

import collections
import os
import sys
import threading
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import KafkaAdminClient

BOOTSTRAP = sys.argv[1]
SUFFIX = uuid.uuid4().hex[:10]
PARTITIONS = 4
N, M, K = 40, 20, 24  # committed, aborted, committed again
TIMEOUT_S = 20  # one consume loop
DEADLINE_S = 90  # the whole script: some client calls block without a timeout

step = "start"


def watchdog():
    # commit_transaction() and friends wait without a timeout: a broker that
    # never answers must fail the run, not hang it.
    time.sleep(DEADLINE_S)
    print(f"kafka-python transactions: FAILED: timed out after {DEADLINE_S}s during: {step}",
          file=sys.stderr, flush=True)
    os._exit(2)


threading.Thread(target=watchdog, daemon=True).start()


def report(kind, value, tb):
    sys.__excepthook__(kind, value, tb)
    print(f"kafka-python transactions: FAILED during: {step}", file=sys.stderr, flush=True)
    os._exit(1)  # client threads must not keep a failed run alive


sys.excepthook = report


def at(name):
    global step
    step = name


def producer(txid):
    return KafkaProducer(
        bootstrap_servers=BOOTSTRAP,
        transactional_id=txid,
        max_block_ms=15000,
        request_timeout_ms=10000,
        linger_ms=5,
    )


def consumer(isolation, **kw):
    return KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        isolation_level=isolation,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10000,
        **kw,
    )


def read_all(topic, partitions, isolation):
    """Every record of `topic` visible at `isolation`, read until each
    partition's position reaches its end (the LSO when read_committed)."""
    c = consumer(isolation)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        got = []
        deadline = time.time() + TIMEOUT_S
        while any(c.position(tp) < end[tp] for tp in tps):
            assert time.time() < deadline, (
                f"{isolation} read of {topic} stuck: positions "
                f"{ {tp.partition: c.position(tp) for tp in tps} } end {end}")
            for recs in c.poll(timeout_ms=500).values():
                got.extend(recs)
        # Nothing may show up past the end either.
        for recs in c.poll(timeout_ms=300).values():
            got.extend(recs)
        return got, end
    finally:
        c.close()


def values(records):
    return [r.value.decode() for r in records]


admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10000)
topic = f"txn-kp-{SUFFIX}"
out_topic = f"txn-kp-out-{SUFFIX}"
fence_topic = f"txn-kp-fence-{SUFFIX}"
at("create topics")
admin.create_topics(
    {topic: {"num_partitions": PARTITIONS, "replication_factor": 1},
     out_topic: {"num_partitions": 2, "replication_factor": 1},
     fence_topic: {"num_partitions": 1, "replication_factor": 1}},
    wait_for_metadata=True,
)

# --- 1. commit / abort / commit -------------------------------------------
at("init_transactions (main producer)")
p = producer(f"txn-kp-main-{SUFFIX}")
p.init_transactions()


def batch(tag, count):
    # Explicit partitions so every transaction spans all four (both shards).
    futs = [p.send(topic, key=f"k{i}".encode(), value=f"{tag}-{i}".encode(),
                   partition=i % PARTITIONS)
            for i in range(count)]
    p.flush(timeout=15)
    for f in futs:
        f.get(timeout=1)  # every record acknowledged by the broker
    return [f"{tag}-{i}" for i in range(count)]


at("first committed transaction")
p.begin_transaction()
committed = batch("c1", N)
p.commit_transaction()

at("aborted transaction")
p.begin_transaction()
aborted = batch("ab", M)
p.abort_transaction()

at("second committed transaction")
p.begin_transaction()
committed += batch("c2", K)
p.commit_transaction()
p.close(timeout=5)

at("read_committed read of the main topic")
rc, rc_end = read_all(topic, PARTITIONS, "read_committed")
got = values(rc)
leaked = sorted(set(got) & set(aborted))
assert not leaked, f"read_committed returned aborted records: {leaked}"
assert sorted(got) == sorted(committed), (
    f"read_committed: expected the {len(committed)} committed records, got "
    f"{len(got)}: missing {sorted(set(committed) - set(got))}, "
    f"duplicates {[v for v, n in collections.Counter(got).items() if n > 1]}")
for part in range(PARTITIONS):
    seen = [r.value.decode() for r in rc if r.partition == part]
    want = [v for v in committed if int(v.split("-")[1]) % PARTITIONS == part]
    assert seen == want, f"partition {part} read_committed out of produce order: {seen} != {want}"
    offsets = [r.offset for r in rc if r.partition == part]
    assert offsets == sorted(offsets), f"partition {part}: offsets not increasing: {offsets}"

at("read_uncommitted read of the main topic")
ru, _ = read_all(topic, PARTITIONS, "read_uncommitted")
got = values(ru)
everything = committed[:N] + aborted + committed[N:]
assert sorted(got) == sorted(everything), (
    f"read_uncommitted: expected all {len(everything)} records, got {len(got)}: "
    f"missing {sorted(set(everything) - set(got))}")
for part in range(PARTITIONS):
    seen = [r.value.decode() for r in ru if r.partition == part]
    want = [v for v in everything if int(v.split("-")[1]) % PARTITIONS == part]
    assert seen == want, f"partition {part} read_uncommitted out of produce order: {seen} != {want}"

# --- 2. consume-transform-produce -----------------------------------------
group = f"txn-kp-group-{SUFFIX}"
at("consume-transform-produce: group consume")
c = consumer("read_committed", group_id=group)
c.subscribe([topic])
inputs = []
deadline = time.time() + TIMEOUT_S
while len(inputs) < len(committed):
    assert time.time() < deadline, (
        f"group consumer got only {len(inputs)}/{len(committed)} committed records")
    for recs in c.poll(timeout_ms=500).values():
        inputs.extend(recs)
assert sorted(values(inputs)) == sorted(committed), (
    f"group consumer (read_committed) read {sorted(values(inputs))}")
tps = [TopicPartition(topic, part) for part in range(PARTITIONS)]
positions = {tp: c.position(tp) for tp in tps}
assert positions == rc_end, (
    f"group consumer positions {positions} are not the read_committed end {rc_end}")
gm = c.group_metadata()
assert gm.group_id == group and gm.generation_id > 0 and gm.member_id, (
    f"consumer not in a group generation: {gm}")


def group_offsets():
    # The admin client's OffsetFetch does not ask for stable offsets, so a
    # pending transactional commit must read as the previous commit (none).
    listed = admin.list_group_offsets({group: tps})[group]
    return {tp: listed[tp].offset if tp in listed else -1 for tp in tps}


def transform_and_send_offsets(prod):
    prod.begin_transaction()
    for r in inputs:
        prod.send(out_topic, key=r.key, value=b"out:" + r.value)
    prod.flush(timeout=15)
    prod.send_offsets_to_transaction(
        {tp: OffsetAndMetadata(off, "", -1) for tp, off in positions.items()}, gm)


none = {tp: -1 for tp in tps}
at("consume-transform-produce: aborted attempt")
ctp = producer(f"txn-kp-ctp-{SUFFIX}")
ctp.init_transactions()
transform_and_send_offsets(ctp)
assert group_offsets() == none, (
    f"offsets of an open transaction visible as committed: {group_offsets()}")
ctp.abort_transaction()
assert group_offsets() == none, (
    f"offsets of an aborted transaction became committed: {group_offsets()}")

at("consume-transform-produce: committed attempt")
transform_and_send_offsets(ctp)
assert group_offsets() == none, (
    f"offsets of an open transaction visible as committed: {group_offsets()}")
ctp.commit_transaction()
ctp.close(timeout=5)

at("consume-transform-produce: committed offsets")
listed = group_offsets()
assert listed == positions, (
    f"group offsets after the transaction {listed} != consumed positions {positions}")
c.close(autocommit=False)
fresh = consumer("read_committed", group_id=group)
fetched = {tp: fresh.committed(tp) for tp in tps}
fresh.close(autocommit=False)
assert fetched == positions, (
    f"committed() from a fresh group member {fetched} != consumed positions {positions}")

at("consume-transform-produce: read output")
out, _ = read_all(out_topic, 2, "read_committed")
want = sorted("out:" + v for v in committed)
assert sorted(values(out)) == want, (
    f"output topic read_committed holds {len(out)} records, expected each of the "
    f"{len(want)} inputs exactly once (one copy was aborted): "
    f"missing {sorted(set(want) - set(values(out)))}, "
    f"duplicates {[v for v, n in collections.Counter(values(out)).items() if n > 1]}")

# --- 3. zombie fencing ------------------------------------------------------
fence_id = f"txn-kp-fence-{SUFFIX}"
at("fencing: producer A opens a transaction")
a = producer(fence_id)
a.init_transactions()
a.begin_transaction()
a.send(fence_topic, value=b"from-A").get(timeout=15)  # really written

at("fencing: producer B inits with the same transactional id")
b = producer(fence_id)
b.init_transactions()  # must fence A and abort its open transaction

at("fencing: producer A commits (must fail)")
try:
    a.commit_transaction()
except Exception as e:  # ProducerFencedError or InvalidProducerEpoch
    a_error = e
else:
    a_error = None
assert a_error is not None, "fenced producer A committed its transaction successfully"
a.close(timeout=2)

at("fencing: producer B commits")
b.begin_transaction()
b.send(fence_topic, value=b"from-B").get(timeout=15)
b.commit_transaction()
b.close(timeout=5)

at("fencing: read fence topic")
got = values(read_all(fence_topic, 1, "read_committed")[0])
assert got == ["from-B"], f"read_committed after fencing: expected ['from-B'], got {got}"
got = values(read_all(fence_topic, 1, "read_uncommitted")[0])
assert got == ["from-A", "from-B"], (
    f"read_uncommitted after fencing: expected A's aborted and B's record, got {got}")

admin.close()
print(f"fenced producer A's commit failed as it should: {type(a_error).__name__}: {a_error}")
print("kafka-python transactions: ok")
