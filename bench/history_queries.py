"""Times the job-history endpoints of a running hangar-api over a large
job_runs: every filter of `GET /api/v1/jobs` (alone, combined, a payload
field, a time range, a later page), `GET /api/v1/jobs/{id}` of jobs spread
over the 90 days, and `GET /api/v1/queues`. Each request REPEAT times over
one keep-alive connection after WARMUP untimed ones; prints per endpoint the
median, p99 and worst time to the last byte (loopback: server time plus well
under a millisecond) and the rows returned.

    python3 bench/history_queries.py <base-url> <api-key> [REPEAT=200]
"""

import json
import sys
import time
import urllib.parse

from endpoint_timer import Api, time_endpoints

BASE, KEY = sys.argv[1], sys.argv[2]
REPEAT = int(sys.argv[3]) if len(sys.argv) > 3 else 200
api = Api(BASE, KEY)
get = api.get


def day(days_ago):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - days_ago * 86400))


q = urllib.parse.quote
payload = q(json.dumps({"account": "acct-07"}))
payload2 = q(json.dumps({"account": "acct-07", "region": "eu-west-1"}))
rare = q(json.dumps({"account": "acct-07", "region": "nowhere-1"}))
first = get("/api/v1/jobs?limit=50")
ids = [get(f"/api/v1/jobs?created_before={day(d)}&limit=1")["jobs"][0]["id"] for d in (0.5, 30, 60, 89)]

ENDPOINTS = [
    ("jobs", "/api/v1/jobs"),
    ("jobs limit=200", "/api/v1/jobs?limit=200"),
    ("jobs page 2", f"/api/v1/jobs?cursor={q(first['next_cursor'])}"),
    ("jobs kind", "/api/v1/jobs?kind=sync.billing"),
    ("jobs kind rare", "/api/v1/jobs?kind=system.retention"),
    ("jobs state dead", "/api/v1/jobs?state=dead"),
    ("jobs state queued", "/api/v1/jobs?state=queued"),
    ("jobs kind+state", "/api/v1/jobs?kind=sync.usage&state=dead"),
    ("jobs queue", "/api/v1/jobs?queue=inference"),
    ("jobs requested_by", "/api/v1/jobs?requested_by=jwt%3Aalice"),
    ("jobs created_after 7d", f"/api/v1/jobs?created_after={day(7)}"),
    ("jobs created 60-59d ago", f"/api/v1/jobs?created_after={day(60)}&created_before={day(59)}"),
    ("jobs payload", f"/api/v1/jobs?payload={payload}"),
    ("jobs payload 2 fields+kind", f"/api/v1/jobs?kind=sync.workspaces&payload={payload2}"),
    ("jobs payload no match", f"/api/v1/jobs?payload={rare}"),
    ("jobs state+created 30d ago", f"/api/v1/jobs?state=dead&created_before={day(30)}"),
] + [(f"job {i} ({d} days old)", f"/api/v1/jobs/{ids[i]}") for i, d in enumerate((0.5, 30, 60, 89))] + [
    ("queues", "/api/v1/queues"),
]

time_endpoints(api, ENDPOINTS, lambda body: len(body["jobs"]) if "jobs" in body else 1, REPEAT)
