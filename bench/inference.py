"""Hangar's overhead per inference job against calling llama-server directly.

Usage: inference.py API_URL TOKEN LLAMA_URL [N] [JOBS] [SLOTS] [MAX_TOKENS]

1. Latency, N sequential requests each way with the same request (greedy,
   MAX_TOKENS tokens, default 16): direct = one streaming POST /v1/chat/completions read to
   [DONE]; Hangar = POST /api/v1/inference/chat, then GET the job's SSE
   stream until its `result` event (API -> PostgreSQL + Redis -> worker ->
   /tokenize + server -> Redis stream -> API -> client; the result also
   lands in job_runs and the conversation tables).
2. Throughput, JOBS requests: direct with SLOTS concurrent clients (the
   server's slot count); Hangar with all JOBS submitted at once and the
   worker's cross-worker cap at SLOTS, done when every job has succeeded.
"""

import concurrent.futures as cf
import json
import statistics
import sys
import time
import urllib.request

API, TOKEN, LLAMA = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(sys.argv[4]) if len(sys.argv) > 4 else 50
JOBS = int(sys.argv[5]) if len(sys.argv) > 5 else 100
SLOTS = int(sys.argv[6]) if len(sys.argv) > 6 else 2
MAX_TOKENS = int(sys.argv[7]) if len(sys.argv) > 7 else 16
MESSAGES = [{"role": "user", "content": "Summarise the state of the fleet."}]
PARAMS = {"temperature": 0, "top_p": 1, "max_tokens": MAX_TOKENS}
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def post(url, body, headers):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    return urllib.request.urlopen(req, timeout=120)


def direct():
    body = {"model": "tiny", "messages": MESSAGES, "stream": True,
            "stream_options": {"include_usage": True}, **PARAMS}
    with post(f"{LLAMA}/v1/chat/completions", body, {"Content-Type": "application/json"}) as r:
        for line in r:
            if line.strip() == b"data: [DONE]":
                return
    raise RuntimeError("stream ended without [DONE]")


def submit():
    with post(f"{API}/api/v1/inference/chat", {"model": "tiny", "messages": MESSAGES, **PARAMS}, AUTH) as r:
        assert r.status == 202, r.status
        return json.load(r)["job"]["id"]


def await_result(job_id):
    req = urllib.request.Request(f"{API}/api/v1/jobs/{job_id}/stream", headers=AUTH)
    with urllib.request.urlopen(req, timeout=120) as r:
        event = None
        for line in r:
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("result", "error"):
                if event == "error":
                    raise RuntimeError(line)
                return json.loads(line[6:])
    raise RuntimeError("stream ended without a result")


def via_hangar():
    await_result(submit())


def job_state(job_id):
    req = urllib.request.Request(f"{API}/api/v1/jobs/{job_id}", headers=AUTH)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)["state"]


def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


for _ in range(5):  # warm both paths (connections, caches, prompt cache)
    direct()
    via_hangar()

d = timed(direct, N)
h = timed(via_hangar, N)
print(f"RESULT latency n={N} max_tokens={MAX_TOKENS} direct_p50_ms={pct(d, 50):.1f} direct_p95_ms={pct(d, 95):.1f} "
      f"hangar_p50_ms={pct(h, 50):.1f} hangar_p95_ms={pct(h, 95):.1f} "
      f"overhead_p50_ms={pct(h, 50) - pct(d, 50):.1f} overhead_mean_ms={statistics.mean(h) - statistics.mean(d):.1f}")

t = time.perf_counter()
with cf.ThreadPoolExecutor(SLOTS) as pool:
    list(pool.map(lambda _: direct(), range(JOBS)))
direct_rate = JOBS / (time.perf_counter() - t)

t = time.perf_counter()
with cf.ThreadPoolExecutor(16) as pool:
    ids = list(pool.map(lambda _: submit(), range(JOBS)))
submitted = time.perf_counter() - t
pending = set(ids)
while pending:
    with cf.ThreadPoolExecutor(16) as pool:
        states = dict(zip(pending, pool.map(job_state, pending)))
    bad = [i for i, s in states.items() if s in ("dead", "cancelled")]
    if bad:
        raise SystemExit(f"jobs failed: {bad[:3]}")
    pending = {i for i, s in states.items() if s != "succeeded"}
    if pending:
        time.sleep(0.05)
hangar_rate = JOBS / (time.perf_counter() - t)
print(f"RESULT throughput jobs={JOBS} slots={SLOTS} max_tokens={MAX_TOKENS} direct_per_s={direct_rate:.1f} "
      f"hangar_per_s={hangar_rate:.1f} submit_all_s={submitted:.2f} ratio={hangar_rate / direct_rate:.2f}")
