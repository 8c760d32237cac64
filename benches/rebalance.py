"""Group rebalance time over many partitions: MEMBERS confluent-kafka
consumers join one group on TOPIC; prints the seconds from the first
subscribe until their assignments cover every partition, then again after
one member leaves.

Usage: rebalance.py BOOTSTRAP TOPIC MEMBERS
(confluent-kafka from tests/clients/requirements.txt: target/pyenv/bin/python)"""
import sys, time, threading
from confluent_kafka import Consumer
addr, topic, members = sys.argv[1], sys.argv[2], int(sys.argv[3])
probe = Consumer({"bootstrap.servers": addr, "group.id": "rb-probe"})
PARTITIONS = len(probe.list_topics(topic, timeout=10).topics[topic].partitions)
probe.close()
assigned = {}
lock = threading.Lock()
def make(i):
    c = Consumer({"bootstrap.servers": addr, "group.id": "rb", "session.timeout.ms": 10000,
                  "partition.assignment.strategy": "range"})
    def on_assign(consumer, parts):
        with lock: assigned[i] = len(parts)
    def on_revoke(consumer, parts):
        with lock: assigned[i] = 0
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    return c
stop = False
def poll(c):
    while not stop:
        c.poll(0.05)
def settled(n):
    with lock:
        return len([v for v in assigned.values() if v > 0]) == n and sum(assigned.values()) == PARTITIONS
start = time.monotonic()
consumers = [make(i) for i in range(members)]
threads = [threading.Thread(target=poll, args=(c,)) for c in consumers]
for t in threads: t.start()
while not settled(members):
    time.sleep(0.01)
    if time.monotonic() - start > 120: sys.exit("no settled assignment in 120 s")
print(f"join: {members} members cover {PARTITIONS} partitions after {time.monotonic() - start:.2f} s")
stop = True
for t in threads: t.join()
# One member leaves: the rest take over.
leaving = consumers.pop()
with lock: assigned.pop(members - 1, None)
stop = False
threads = [threading.Thread(target=poll, args=(c,)) for c in consumers]
for t in threads: t.start()
start = time.monotonic()
leaving.close()
while not settled(members - 1):
    time.sleep(0.01)
    if time.monotonic() - start > 120: sys.exit("no settled reassignment in 120 s")
print(f"leave: {members - 1} members cover {PARTITIONS} partitions after {time.monotonic() - start:.2f} s")
stop = True
for t in threads: t.join()
for c in consumers: c.close()
