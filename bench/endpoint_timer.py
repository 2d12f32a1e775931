"""What the endpoint benchmarks share: GET requests with a bearer token over
one keep-alive connection, and timing each endpoint REPEAT times after
WARMUP untimed requests, printing per endpoint the median, p99 and worst
time to the last byte and the rows returned, then the worst p99.
Used by bench/history_queries.py and bench/inventory_queries.py."""

import http.client
import json
import statistics
import time
import urllib.parse

WARMUP = 5


class Api:
    """A running hangar-api, asked with an API key or JWT."""

    def __init__(self, base, key):
        self.conn = http.client.HTTPConnection(urllib.parse.urlsplit(base).netloc, timeout=60)
        self.auth = {"Authorization": f"Bearer {key}"}

    def get(self, path):
        self.conn.request("GET", path, headers=self.auth)
        r = self.conn.getresponse()
        data = r.read()
        assert r.status == 200, (path, r.status, data[:300])
        return json.loads(data)


def time_endpoints(api, endpoints, rows_of, repeat):
    """Times each (name, path) of `endpoints`; `rows_of(body)` counts the
    rows an answer holds."""
    worst = None
    for name, path in endpoints:
        times = []
        for i in range(WARMUP + repeat):
            started = time.perf_counter()
            body = api.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            if i >= WARMUP:
                times.append(elapsed)
        times.sort()
        p99 = times[max(0, int(len(times) * 0.99) - 1)]
        print(f"RESULT endpoint={name!r} median_ms={statistics.median(times):.1f} p99_ms={p99:.1f} "
              f"max_ms={times[-1]:.1f} rows={rows_of(body)}", flush=True)
        if worst is None or p99 > worst[1]:
            worst = (name, p99)
    print(f"RESULT worst_p99 endpoint={worst[0]!r} p99_ms={worst[1]:.1f}")
