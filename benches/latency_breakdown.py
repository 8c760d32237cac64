"""Where the time of a produce at 20,000 msgs/s, linger 0, goes.

For each broker configuration given (one argument each, the broker's extra
flags in one string), starts a fresh broker with its metrics listener, runs
`sluice-bench produce --rate 20000 --linger-ms 0` against it, then reads
the broker's own histograms from /metrics and prints one markdown row:
what the client saw, how long the broker held each Produce request, how
long each WAL fdatasync took per shard and how many frames it carried, how
many cross-shard calls there were and how long they took, and the CPU of
the broker and of the load generator.

Usage (from the repository root, after `cargo build --release -p sluice -p sluice-benches`):
  python3 benches/latency_breakdown.py "--shards 2" "--shards 2 --idle-spin-us 0" "--shards 1"
Only the standard library is used. Histogram figures are means (sum/count)
and the share of observations above a bucket bound, as the buckets allow.
"""
import json, os, re, shutil, subprocess, sys, tempfile, time, urllib.request

BROKER = "target/release/sluice"
BENCH = "target/release/sluice-bench"
ADDR, METRICS = "127.0.0.1:19510", "127.0.0.1:19646"
DURATION = os.environ.get("DURATION", "10")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape():
    text = urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=10).read().decode()
    series = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            series.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return series


def hist(series, name, **want):
    """(count, sum, {le: cumulative}) of one histogram's matching series, added up."""
    count = total = 0.0
    buckets = {}
    for labels, v in series.get(name + "_count", []):
        if all(labels.get(k) == w for k, w in want.items()):
            count += v
    for labels, v in series.get(name + "_sum", []):
        if all(labels.get(k) == w for k, w in want.items()):
            total += v
    for labels, v in series.get(name + "_bucket", []):
        if all(labels.get(k) == w for k, w in want.items()):
            buckets[labels["le"]] = buckets.get(labels["le"], 0) + v
    return count, total, buckets


def above(h, le):
    count, _, buckets = h
    return 100.0 * (count - buckets.get(le, count)) / count if count else 0.0


def mean_ms(h):
    return 1000.0 * h[1] / h[0] if h[0] else 0.0


def run(flags):
    data = tempfile.mkdtemp(prefix="sluice-breakdown-", dir="target")
    broker = subprocess.Popen(
        [BROKER, "serve", "--listen", ADDR, "--data-dir", data, "--metrics-listen", METRICS]
        + flags.split(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in broker.stderr:
            if "sluice ready" in line:
                break
        subprocess.Popen(["cat"], stdin=broker.stderr, stdout=subprocess.DEVNULL)
        own0, b0 = os.times(), cpu_seconds(broker.pid)
        started = time.monotonic()
        out = subprocess.run(
            [BENCH, "produce", "--bootstrap", ADDR, "--create", "--topic", "lat", "--partitions", "6",
             "--size", "1024", "--acks", "all", "--rate", "20000", "--linger-ms", "0",
             "--duration", DURATION, "--json"],
            capture_output=True, text=True, check=True).stdout
        wall = time.monotonic() - started
        own1, b1 = os.times(), cpu_seconds(broker.pid)
        client = json.loads(out.strip().splitlines()[-1])
        s = scrape()
    finally:
        broker.kill()
        broker.wait()
        shutil.rmtree(data, ignore_errors=True)
    produce = hist(s, "sluice_request_duration_seconds", api="Produce")
    shards = sorted({l["shard"] for l, _ in s.get("sluice_wal_sync_duration_seconds_count", [])})
    syncs = [hist(s, "sluice_wal_sync_duration_seconds", shard=sh) for sh in shards]
    frames = [hist(s, "sluice_wal_flush_frames", shard=sh) for sh in shards]
    calls = hist(s, "sluice_shard_call_duration_seconds")
    p = lambda k: client.get(k, float("nan"))
    sync_means = ", ".join(f"{mean_ms(h):.2f}" for h in syncs)
    sync_tails = ", ".join(f"{above(h, '0.001'):.1f}%" for h in syncs)
    per_flush = ", ".join(f"{f[1] / f[0]:.1f}" if f[0] else "-" for f in frames)
    own = (own1.children_user + own1.children_system) - (own0.children_user + own0.children_system)
    return (
        f"| `{flags}` | {p('p50_ms'):.2f} / {p('p99_ms'):.2f} / {p('p999_ms'):.2f}"
        f" | {mean_ms(produce):.2f}; {above(produce, '0.0025'):.1f}% > 2.5 ms, {above(produce, '0.005'):.2f}% > 5 ms"
        f" | {sync_means}; {sync_tails} > 1 ms"
        f" | {per_flush}"
        f" | {calls[0] / float(DURATION):.0f}/s, {mean_ms(calls):.3f} ms"
        f" | {(b1 - b0) / wall:.2f} / {own / wall:.2f} |"
    )


if __name__ == "__main__":
    print("| broker flags | client p50 / p99 / p99.9 ms | broker time per Produce: mean ms; tail | WAL fdatasync per shard: mean ms; share > 1 ms | frames per flush, per shard | cross-shard calls: rate, mean | CPU cores: broker / load generator |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for flags in sys.argv[1:] or ["--shards 2", "--shards 2 --idle-spin-us 0", "--shards 1"]:
        print(run(flags), flush=True)
