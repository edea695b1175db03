"""The soak's load and samples (run by bench/soak): SOAK_WRITERS threads that create and revoke a
token and create and delete a server, paced to a rate or unthrottled, and every SAMPLE seconds
the database's size, the rows /metrics reports, the writes done and Slipway's memory.

Arguments: URL TOKEN DATA_DIR SECONDS SAMPLE WRITERS PID WRITE_RATE (writes a second across
all writers; 0 for as many as they can). With SOAK_ONLY_WRITES=1 it only writes, then prints
the count (the calibration run).
"""
import http.client, json, os, re, sys, threading, time, urllib.parse
url, token, data, seconds, sample, writers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
pid = sys.argv[7]
# Writes a second across all writers; 0 for as many as they can.
write_rate = float(sys.argv[8])
only_writes = os.environ.get("SOAK_ONLY_WRITES") == "1"
host = urllib.parse.urlparse(url).netloc
end = time.time() + seconds
counts = {"writes": 0, "errors": 0}
lock = threading.Lock()

def writer(n):
    conn = http.client.HTTPConnection(host, timeout=30)
    def call(method, path, body=None):
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        r = conn.getresponse()
        payload = r.read()
        with lock:
            counts["writes"] += 1
            if r.status >= 400:
                counts["errors"] += 1
        return r.status, (json.loads(payload) if payload else None)
    i = 0
    began = time.time()
    while time.time() < end:
        i += 1
        if write_rate > 0:
            # Each round is four writes; this writer's share of the rate sets when it may start.
            due = began + (i - 1) * 4 * writers / write_rate
            time.sleep(max(0.0, due - time.time()))
            if time.time() >= end:
                break
        s, t = call("POST", "/api/v1/tokens", {"name": f"soak {n}-{i}"})
        if s == 201:
            tid = t["data"].get("id") or t["data"]["token"]["id"]
            call("DELETE", f"/api/v1/tokens/{tid}")
        s, srv = call("POST", "/api/v1/servers", {"name": f"soak-{n}-{i}", "provider": "custom", "ip_address": "192.0.2.1"})
        if s == 201:
            call("DELETE", f"/api/v1/servers/{srv['data']['id']}")

def size(name):
    try:
        return os.path.getsize(os.path.join(data, name))
    except OSError:
        return 0

def rss_mib():
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def metrics():
    conn = http.client.HTTPConnection(host, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    rows = dict(re.findall(r'slipway_table_rows\{table="(\w+)"\} (\d+)', text))
    pruned = sum(int(n) for n in re.findall(r'slipway_pruned_rows_total\{rule="\w+"\} (\d+)', text))
    return rows, pruned

threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(writers)]
for t in threads:
    t.start()
if only_writes:
    for t in threads:
        t.join(timeout=seconds + 30)
    print(f"writes: {counts['writes']}, failed: {counts['errors']}")
    sys.exit(0)
start = time.time()
print(f"{'t (s)':>6} {'db MiB':>8} {'wal MiB':>8} {'writes':>8} {'errors':>6} {'audit rows':>10} {'token rows':>10} {'pruned':>8} {'RSS MiB':>8}")
rss = []
while True:
    time.sleep(max(0, min(sample, end - time.time())))
    rows, pruned = metrics()
    with lock:
        w, e = counts["writes"], counts["errors"]
    print(f"{time.time() - start:6.0f} {size('slipway.db') / 2**20:8.2f} {size('slipway.db-wal') / 2**20:8.2f} {w:8d} {e:6d}"
          f" {rows.get('audit_events', '-'):>10} {rows.get('access_tokens', '-'):>10} {pruned:8d} {rss_mib():8.1f}", flush=True)
    rss.append(rss_mib())
    if time.time() >= end:
        break
for t in threads:
    t.join(timeout=30)
# Memory grows while the database fills its retention window (the first few minutes with the
# short retention); the growth that counts is over the second half, once it holds steady.
if len(rss) >= 4:
    half = rss[len(rss) // 2 - 1]
    print(f"RSS: {rss[0]:.1f} MiB at the first sample, {half:.1f} MiB at half time, {rss[-1]:.1f} MiB at the end, "
          f"peak {max(rss):.1f} MiB; growth over the second half {100 * (rss[-1] - half) / half:+.1f}% (target < 10%)")
with lock:
    print(f"writes: {counts['writes']} ({counts['writes'] / seconds:.1f}/s), failed: {counts['errors']}")
