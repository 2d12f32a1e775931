"""Times the inventory endpoints of a running hangar-api over a synced
fleet: every filter of `GET /api/v1/workspaces` (alone and combined, free
text, a later page, the largest page), `GET /api/v1/workspaces/{id}` and
`GET /api/v1/directories`. Each request REPEAT times over one keep-alive
connection after WARMUP untimed ones; prints per endpoint the median, p99
and worst time to the last byte (loopback: server time plus well under a
millisecond) and the rows returned. Filter values are read from the
inventory itself (an account, a directory, a user, a bundle of a workspace
in the middle of the fleet).

    python3 bench/inventory_queries.py <base-url> <api-key> [REPEAT=200]
"""

import sys
import urllib.parse

from endpoint_timer import Api, time_endpoints

BASE, KEY = sys.argv[1], sys.argv[2]
REPEAT = int(sys.argv[3]) if len(sys.argv) > 3 else 200
api = Api(BASE, KEY)
get = api.get

q = urllib.parse.quote
first = get("/api/v1/workspaces?limit=1000")
middle = first["workspaces"][len(first["workspaces"]) // 2]
acct, region = middle["account"], middle["region"]
user = middle["user_name"]
ENDPOINTS = [
    ("workspaces", "/api/v1/workspaces"),
    ("workspaces limit=1000", "/api/v1/workspaces?limit=1000"),
] + ([("workspaces page 2", f"/api/v1/workspaces?cursor={q(first['next_cursor'])}")] if first["next_cursor"] else []) + [
    ("workspaces account", f"/api/v1/workspaces?account={acct}"),
    ("workspaces account+region", f"/api/v1/workspaces?account={acct}&region={region}"),
    ("workspaces region", f"/api/v1/workspaces?region={region}"),
    ("workspaces state STOPPED", "/api/v1/workspaces?state=STOPPED"),
    ("workspaces state ERROR (none)", "/api/v1/workspaces?state=ERROR"),
    ("workspaces directory", f"/api/v1/workspaces?directory={middle['directory_id']}"),
    ("workspaces bundle", f"/api/v1/workspaces?bundle={middle['bundle_id']}"),
    ("workspaces user", f"/api/v1/workspaces?user={q(user)}"),
    ("workspaces q=user", f"/api/v1/workspaces?q={q(user)}"),
    ("workspaces q=id prefix", f"/api/v1/workspaces?q={q(middle['workspace_id'][:7])}"),
    ("workspaces q=no match", "/api/v1/workspaces?q=zzzzzz"),
    ("workspaces account+state+q", f"/api/v1/workspaces?account={acct}&state=AVAILABLE&q=user"),
    ("workspaces include_deleted", "/api/v1/workspaces?include_deleted=true"),
    ("workspace by id", f"/api/v1/workspaces/{middle['workspace_id']}?account={acct}"),
    ("directories", "/api/v1/directories"),
]

time_endpoints(api, ENDPOINTS, lambda body: len(body.get("workspaces", body.get("directories", [body]))), REPEAT)
