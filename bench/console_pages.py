"""Times every console page and filter against a running hangar-api: logs
in with an API key (a real console session), then requests each page
REPEAT times over one keep-alive connection after WARMUP untimed requests,
and prints per page the median, p95 and worst time to the last byte (on
loopback: server time plus well under a millisecond), the status and the
page's size. Then the first page load's weight: the overview's HTML and
every asset it links, as transferred.

    python3 bench/console_pages.py <base-url> <api-key> [REPEAT=40]
"""

import http.client
import json
import re
import statistics
import sys
import time
import urllib.parse

BASE, KEY = sys.argv[1], sys.argv[2]
REPEAT = int(sys.argv[3]) if len(sys.argv) > 3 else 40
WARMUP = 3
HOST = urllib.parse.urlsplit(BASE).netloc
conn = http.client.HTTPConnection(HOST, timeout=60)


def request(method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, dict(r.getheaders()), data


def api(path):
    status, _, data = request("GET", path, headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200, (path, status, data[:200])
    return json.loads(data)


# A console session, as a browser gets one.
status, headers, _ = request(
    "POST", "/ui/login", body=urllib.parse.urlencode({"credential": KEY}),
    headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": BASE},
)
assert status == 303, status
cookie = headers["set-cookie"].split(";")[0]

job = api("/api/v1/jobs?limit=1")["jobs"][0]["id"]
dead = api("/api/v1/jobs?state=dead&limit=1")["jobs"][0]["id"]
ws = api("/api/v1/workspaces?state=AVAILABLE&limit=1")["workspaces"][0]
w = f"/ui/workspaces/{ws['workspace_id']}?account={ws['account']}"
week_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 7 * 86400))
month_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86400))

PAGES = [
    ("overview", "/ui/"),
    ("jobs", "/ui/jobs"),
    ("jobs kind", "/ui/jobs?kind=sync.billing"),
    ("jobs state dead", "/ui/jobs?state=dead"),
    ("jobs kind+state", "/ui/jobs?kind=sync.usage&state=dead"),
    ("jobs queue", "/ui/jobs?queue=inference"),
    ("jobs requester", "/ui/jobs?requested_by=jwt%3Aalice"),
    ("jobs last week", f"/ui/jobs?created_after={week_ago}"),
    ("jobs payload", "/ui/jobs?payload=account%3Dacct-07"),
    ("jobs payload+kind", "/ui/jobs?kind=sync.workspaces&payload=account%3Dacct-07%2C+region%3Deu-west-1"),
    ("jobs payload rare", "/ui/jobs?payload=account%3Dacct-07%2C+region%3Dnowhere-1"),
    ("jobs page 2", None),
    ("job", f"/ui/jobs/{job}"),
    ("job dead", f"/ui/jobs/{dead}"),
    ("bulk preview", None),
    ("schedules", "/ui/schedules"),
    ("workers", "/ui/workers"),
    ("workspaces", "/ui/workspaces"),
    ("workspaces state", "/ui/workspaces?state=STOPPED"),
    ("workspaces search", "/ui/workspaces?q=user4711"),
    ("workspaces account+region", "/ui/workspaces?account=acct-03&region=eu-west-1"),
    ("workspace", w),
    ("workspace connections", w + "&tab=connections"),
    ("workspace tags", w + "&tab=tags"),
    ("workspace usage", w + "&tab=usage"),
    ("workspace costs", w + "&tab=costs"),
    ("workspace events", w + "&tab=events"),
    ("billing 30 days", "/ui/billing"),
    ("billing 90 days workspaces", f"/ui/billing?start={time.strftime('%Y-%m-%d', time.gmtime(time.time() - 89 * 86400))}&view=workspaces"),
    ("billing one account", f"/ui/billing?start={month_ago}&account=acct-05"),
    ("audit", "/ui/audit"),
    ("audit event", "/ui/audit?event_name=RebootWorkspaces"),
    ("audit user", "/ui/audit?user=alice"),
    ("hangar audit log", "/ui/audit/hangar"),
    ("reports", "/ui/reports"),
    ("models", "/ui/models"),
    ("admin", "/ui/admin"),
]

page = {"Cookie": cookie}
status, _, html = request("GET", "/ui/jobs", headers=page)
csrf = re.search(rb'name="csrf" value="([^"]+)"', html).group(1).decode()
nxt = re.search(rb'href="(/ui/jobs\?[^"]*cursor=[^"]+)" rel="next"', html).group(1).decode().replace("&amp;", "&")

results = []
for name, path in PAGES:
    if name == "jobs page 2":
        path, method, body, hdrs = nxt, "GET", None, page
    elif name == "bulk preview":
        path, method = "/ui/jobs/bulk", "POST"
        body = urllib.parse.urlencode({"csrf": csrf, "do": "retry-matching", "f_kind": "sync.workspaces"})
        hdrs = {**page, "Origin": BASE, "Content-Type": "application/x-www-form-urlencoded"}
    else:
        method, body, hdrs = "GET", None, page
    times = []
    for i in range(WARMUP + REPEAT):
        t = time.perf_counter()
        status, _, data = request(method, path, body=body, headers=hdrs)
        elapsed = (time.perf_counter() - t) * 1000
        assert status == 200, (name, path, status, data[:300])
        if i >= WARMUP:
            times.append(elapsed)
    times.sort()
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    results.append((name, statistics.median(times), p95, times[-1], len(data)))
    print(f"RESULT page={name!r} median_ms={statistics.median(times):.1f} p95_ms={p95:.1f} max_ms={times[-1]:.1f} bytes={len(data)}", flush=True)

# First page load: the overview and what it links (CSS, JS, icon).
status, headers, html = request("GET", "/ui/", headers={**page, "Accept-Encoding": "gzip, br"})
total = len(html)
assets = re.findall(rb'(?:href|src)="(/ui/assets/[^"]+)"', html)
for a in assets:
    s, h, data = request("GET", a.decode(), headers={"Accept-Encoding": "gzip, br"})
    assert s == 200 and "immutable" in h.get("cache-control", ""), (a, s, h)
    total += len(data)
print(f"RESULT first_load_bytes={total} html_bytes={len(html)} assets={len(assets)} "
      f"content_encoding={headers.get('content-encoding', 'identity')}")
worst = max(results, key=lambda r: r[2])
print(f"RESULT worst_p95 page={worst[0]!r} p95_ms={worst[2]:.1f}")
