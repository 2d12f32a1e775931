#!/usr/bin/env python3
"""Self-test for hangar_moto.py: starts it on a free port, drives it with
boto3 over HTTP the way the Rust integration tests will, and exits non-zero
on the first failed check.

Usage: python3 tests/moto/selftest.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT = "123456789012"
ROLE_ACCOUNT = "111111111111"

checks = 0


def ok(name: str) -> None:
    global checks
    checks += 1
    print(f"ok {checks:3d} - {name}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "hangar_moto.py"), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.ctl("GET", "/_hangar/health") == {"ok": True}:
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("emulator did not become healthy")
            time.sleep(0.1)

    def ctl(self, method: str, path: str, payload: dict | None = None, expect: int = 200):
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, body = err.code, err.read()
        assert status == expect, f"{method} {path}: HTTP {status} {body!r}"
        return json.loads(body)

    def client(self, service: str, key: str = "testing", secret: str = "testing",
               token: str | None = None, attempts: int | None = None, region: str = "us-east-1",
               validate: bool = True):
        # validate=False turns off boto3's client-side checks so the
        # emulator's own validation errors can be observed.
        config = Config(parameter_validation=validate)
        if attempts:
            config = config.merge(Config(retries={"total_max_attempts": attempts, "mode": "standard"}))
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=config,
        )

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)


def expect_error(fn, code: str, status: int | None = None) -> ClientError:
    try:
        fn()
    except ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {err}"
        if status is not None:
            got_status = err.response["ResponseMetadata"]["HTTPStatusCode"]
            assert got_status == status, f"expected HTTP {status}, got {got_status}"
        return err
    raise AssertionError(f"expected {code}, call succeeded")


def all_pages(call, token_in: str, token_out: str, items: str, **kwargs):
    pages, token = [], None
    while True:
        args = dict(kwargs)
        if token:
            args[token_in] = token
        resp = call(**args)
        pages.append(resp[items])
        token = resp.get(token_out)
        if not token:
            return pages


# --------------------------------------------------------------------------


def test_workspaces(emu: Emulator) -> None:
    seeded = emu.ctl("POST", "/_hangar/seed/workspaces", {
        "account": ACCOUNT, "region": "us-east-1", "directories": 3,
        "workspaces": 1000, "bundles": 4, "tags_per_workspace": 2,
    })
    assert len(seeded["directory_ids"]) == 3 and len(seeded["bundle_ids"]) == 4
    assert len(seeded["workspace_ids"]) == 1000
    ok("seed 1000 workspaces / 3 directories / 4 bundles")

    ws = emu.client("workspaces")
    pages = all_pages(ws.describe_workspaces, "NextToken", "NextToken", "Workspaces", Limit=25)
    ids = [w["WorkspaceId"] for page in pages for w in page]
    assert len(pages) == 40 and all(len(p) == 25 for p in pages), [len(p) for p in pages]
    assert ids == sorted(seeded["workspace_ids"]), "pages must cover all ids in id order"
    ok("DescribeWorkspaces: 1000 workspaces in 40 pages of 25, ordered by id")

    default_pages = all_pages(ws.describe_workspaces, "NextToken", "NextToken", "Workspaces")
    assert [len(p) for p in default_pages] == [25] * 40
    paginator_ids = [
        w["WorkspaceId"]
        for page in ws.get_paginator("describe_workspaces").paginate(PaginationConfig={"PageSize": 10})
        for w in page["Workspaces"]
    ]
    assert paginator_ids == ids
    ok("DescribeWorkspaces: default limit 25; boto3 paginator agrees")

    first = pages[0][0]
    for field in ("WorkspaceId", "DirectoryId", "UserName", "IpAddress", "State", "BundleId",
                  "SubnetId", "ComputerName", "WorkspaceProperties"):
        assert first.get(field), f"missing {field}: {first}"
    props = first["WorkspaceProperties"]
    for field in ("RunningMode", "RootVolumeSizeGib", "UserVolumeSizeGib", "ComputeTypeName"):
        assert field in props, props
    every = [w for p in pages for w in p]
    states = {w["State"] for w in every}
    assert states == {"AVAILABLE", "STOPPED"}, states
    stopped = sum(w["State"] == "STOPPED" for w in every)
    assert 150 <= stopped <= 250, stopped
    assert all(w["WorkspaceProperties"]["RunningMode"] == "AUTO_STOP"
               for w in every if w["State"] == "STOPPED")
    assert {w["UserName"] for w in every} == {f"user{i:04d}" for i in range(1, 1001)}
    ok(f"workspace shape complete; states AVAILABLE/STOPPED ({stopped} stopped)")

    raw = emu.client("workspaces", validate=False)
    for bad in (0, 26):
        expect_error(lambda: raw.describe_workspaces(Limit=bad), "ValidationException", 400)
    expect_error(lambda: ws.describe_workspaces(NextToken="garbage"), "ValidationException")
    expect_error(lambda: raw.describe_workspaces(WorkspaceIds=ids[:26]), "ValidationException")
    expect_error(lambda: ws.describe_workspaces(UserName="user0001"), "InvalidParameterValuesException")
    ok("DescribeWorkspaces: Limit 0/26, bad token, 26 ids, UserName w/o DirectoryId rejected")

    d0 = seeded["directory_ids"][0]
    by_dir = [w for p in all_pages(ws.describe_workspaces, "NextToken", "NextToken", "Workspaces",
                                   DirectoryId=d0) for w in p]
    assert len(by_dir) == 334 and all(w["DirectoryId"] == d0 for w in by_dir), len(by_dir)
    b1 = seeded["bundle_ids"][1]
    by_bundle = [w for p in all_pages(ws.describe_workspaces, "NextToken", "NextToken", "Workspaces",
                                      BundleId=b1) for w in p]
    assert len(by_bundle) == 250 and all(w["BundleId"] == b1 for w in by_bundle)
    user = ws.describe_workspaces(DirectoryId=d0, UserName="user0001")["Workspaces"]
    assert len(user) == 1 and user[0]["UserName"] == "user0001"
    some = ws.describe_workspaces(WorkspaceIds=ids[100:110])["Workspaces"]
    assert [w["WorkspaceId"] for w in some] == ids[100:110]
    ok("DescribeWorkspaces filters: DirectoryId (334), BundleId (250), UserName, WorkspaceIds")

    dirs = ws.describe_workspace_directories()["Directories"]
    assert sorted(d["DirectoryId"] for d in dirs) == sorted(seeded["directory_ids"])
    assert all(d["State"] == "REGISTERED" and d["DirectoryType"] == "SIMPLE_AD" for d in dirs)
    dir_pages = all_pages(ws.describe_workspace_directories, "NextToken", "NextToken",
                          "Directories", Limit=2)
    assert [len(p) for p in dir_pages] == [2, 1]
    one = ws.describe_workspace_directories(DirectoryIds=[d0])["Directories"]
    assert [d["DirectoryId"] for d in one] == [d0]
    ok("DescribeWorkspaceDirectories: 3 registered directories, Limit=2 paginates, DirectoryIds")

    tags = ws.describe_tags(ResourceId=ids[0])["TagList"]
    assert len(tags) == 2 and {t["Key"] for t in tags} == {"CostCenter", "Team"}, tags
    expect_error(lambda: ws.describe_tags(ResourceId="ws-000000000"), "ResourceNotFoundException")
    ok("DescribeTags: 2 tags per workspace; unknown id -> ResourceNotFoundException")

    statuses = []
    for i in range(0, 1000, 25):
        batch = ids[i:i + 25]
        resp = ws.describe_workspaces_connection_status(WorkspaceIds=batch)
        got = resp["WorkspacesConnectionStatus"]
        assert [s["WorkspaceId"] for s in got] == batch
        assert "NextToken" not in resp
        statuses.extend(got)
    again = [s for i in range(0, 1000, 25) for s in ws.describe_workspaces_connection_status(
        WorkspaceIds=ids[i:i + 25])["WorkspacesConnectionStatus"]]
    assert statuses == again, "connection status must be deterministic"
    conn_states = {s["ConnectionState"] for s in statuses}
    assert conn_states <= {"CONNECTED", "DISCONNECTED", "UNKNOWN"} and "CONNECTED" in conn_states
    assert all(isinstance(s["ConnectionStateCheckTimestamp"], dt.datetime) for s in statuses)
    never = sum("LastKnownUserConnectionTimestamp" not in s for s in statuses)
    stopped_ids = {w["WorkspaceId"] for w in every if w["State"] == "STOPPED"}
    assert all(s["ConnectionState"] == "DISCONNECTED" for s in statuses if s["WorkspaceId"] in stopped_ids)
    expect_error(lambda: raw.describe_workspaces_connection_status(WorkspaceIds=ids[:26]),
                 "ValidationException")
    conn_pages = all_pages(ws.describe_workspaces_connection_status, "NextToken", "NextToken",
                           "WorkspacesConnectionStatus")
    assert [len(p) for p in conn_pages] == [25] * 40
    assert [s for p in conn_pages for s in p] == statuses
    ok(f"DescribeWorkspacesConnectionStatus: 40 batches of 25, deterministic, {never} never "
       "connected, 26 ids rejected, unfiltered paginates")

    bundles = ws.describe_workspace_bundles(BundleIds=seeded["bundle_ids"])["Bundles"]
    assert sorted(b["BundleId"] for b in bundles) == sorted(seeded["bundle_ids"])
    for b in bundles:
        assert b["State"] == "AVAILABLE" and b["BundleType"] == "REGULAR"
        assert b["ComputeType"]["Name"] and b["RootStorage"]["Capacity"] and b["UserStorage"]["Capacity"]
        assert b["Name"] and b["Description"] and b["Owner"] in ("AMAZON", ACCOUNT)
    amazon = ws.describe_workspace_bundles(Owner="AMAZON")["Bundles"]
    mine = ws.describe_workspace_bundles()["Bundles"]
    assert len(amazon) == 2 and len(mine) == 2
    assert {b["BundleId"] for b in amazon + mine} == set(seeded["bundle_ids"])
    ws_bundle = {w["BundleId"] for w in every}
    assert ws_bundle == set(seeded["bundle_ids"])
    for w in every[:50]:
        bundle = next(b for b in bundles if b["BundleId"] == w["BundleId"])
        assert w["WorkspaceProperties"]["ComputeTypeName"] == bundle["ComputeType"]["Name"]
    ok("DescribeWorkspaceBundles: BundleIds, Owner=AMAZON (2), own account (2), matches workspaces")

    gone = ids[:10]
    emu.ctl("POST", "/_hangar/workspaces/terminate",
            {"account": ACCOUNT, "region": "us-east-1", "workspace_ids": gone})
    left = [w["WorkspaceId"] for p in all_pages(ws.describe_workspaces, "NextToken", "NextToken",
                                                "Workspaces") for w in p]
    assert len(left) == 990 and not set(gone) & set(left)
    # A token taken before termination still continues correctly.
    token = ws.describe_workspaces(Limit=25)["NextToken"]
    emu.ctl("POST", "/_hangar/workspaces/terminate",
            {"account": ACCOUNT, "region": "us-east-1", "workspace_ids": [left[0], left[30]]})
    rest = ws.describe_workspaces(Limit=25, NextToken=token)["Workspaces"]
    assert [w["WorkspaceId"] for w in rest] == left[25:30] + left[31:51]
    expect_error(lambda: ws.describe_tags(ResourceId=gone[0]), "ResourceNotFoundException")
    ok("terminate: removed from listings; outstanding NextToken stays consistent")

    other = emu.client("workspaces", region="eu-west-1")
    assert other.describe_workspaces()["Workspaces"] == []
    ok("other region sees no workspaces")


def test_cloudtrail(emu: Emulator) -> None:
    start, end = "2025-01-01T00:00:00Z", "2025-01-08T00:00:00Z"
    spec = {"account": ACCOUNT, "region": "us-east-1", "count": 500, "start": start,
            "end": end, "other_sources": 100, "seed": 7}
    assert emu.ctl("POST", "/_hangar/seed/cloudtrail", spec)["count"] == 600
    emu.ctl("POST", "/_hangar/config", {"lookup_events_per_second": 0})
    ct = emu.client("cloudtrail")
    ws_filter = [{"AttributeKey": "EventSource", "AttributeValue": "workspaces.amazonaws.com"}]
    pages = all_pages(ct.lookup_events, "NextToken", "NextToken", "Events",
                      LookupAttributes=ws_filter, MaxResults=50)
    events = [e for p in pages for e in p]
    assert len(pages) == 10 and len(events) == 500, (len(pages), len(events))
    assert all(e["EventSource"] == "workspaces.amazonaws.com" for e in events)
    times = [e["EventTime"] for e in events]
    assert times == sorted(times, reverse=True), "newest first"
    assert len({e["EventId"] for e in events}) == 500
    lo = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    hi = dt.datetime(2025, 1, 8, tzinfo=dt.timezone.utc)
    assert all(lo <= t < hi for t in times)
    ok("LookupEvents: 500 WorkSpaces events in 10 pages of 50, newest first, none from other sources")

    e = events[0]
    for field in ("EventId", "EventName", "ReadOnly", "AccessKeyId", "EventTime", "EventSource",
                  "Username", "Resources", "CloudTrailEvent"):
        assert field in e, field
    detail = json.loads(e["CloudTrailEvent"])
    for field in ("eventVersion", "userIdentity", "eventTime", "eventSource", "eventName",
                  "awsRegion", "sourceIPAddress", "requestParameters"):
        assert field in detail, field
    assert detail["eventID"] == e["EventId"] and detail["awsRegion"] == "us-east-1"
    targeted = [x for x in events if x["Resources"]]
    assert targeted and all(r["ResourceType"] == "AWS::WorkSpaces::Workspace"
                            for x in targeted for r in x["Resources"])
    ok("LookupEvents: event and CloudTrailEvent JSON shape")

    everything = [e for p in all_pages(ct.lookup_events, "NextToken", "NextToken", "Events")
                  for e in p]
    assert len(everything) == 600
    stops = [e for p in all_pages(ct.lookup_events, "NextToken", "NextToken", "Events",
                                  LookupAttributes=[{"AttributeKey": "EventName",
                                                     "AttributeValue": "StopWorkspaces"}])
             for e in p]
    assert stops and all(e["EventName"] == "StopWorkspaces" for e in stops)
    target = targeted[0]["Resources"][0]["ResourceName"]
    by_res = ct.lookup_events(LookupAttributes=[{"AttributeKey": "ResourceName",
                                                 "AttributeValue": target}])["Events"]
    assert by_res and all(any(r["ResourceName"] == target for r in x["Resources"]) for x in by_res)
    window = [e for p in all_pages(ct.lookup_events, "NextToken", "NextToken", "Events",
                                   LookupAttributes=ws_filter,
                                   StartTime=dt.datetime(2025, 1, 3, tzinfo=dt.timezone.utc),
                                   EndTime=dt.datetime(2025, 1, 4, tzinfo=dt.timezone.utc))
              for e in p]
    assert 50 <= len(window) <= 95, len(window)
    assert all(dt.datetime(2025, 1, 3, tzinfo=dt.timezone.utc) <= e["EventTime"]
               <= dt.datetime(2025, 1, 4, tzinfo=dt.timezone.utc) for e in window)
    expect_error(lambda: ct.lookup_events(LookupAttributes=ws_filter * 2),
                 "InvalidLookupAttributesException")
    ct_raw = emu.client("cloudtrail", validate=False)
    expect_error(lambda: ct_raw.lookup_events(MaxResults=51), "InvalidMaxResultsException")
    expect_error(lambda: ct.lookup_events(StartTime=hi, EndTime=lo), "InvalidTimeRangeException")
    ok(f"LookupEvents: unfiltered 600, EventName ({len(stops)}), ResourceName, time window "
       f"({len(window)}); invalid input rejected")

    # Same seed after a reset -> same ids; explicit events accepted.
    ids_before = [x["EventId"] for x in everything]
    emu.ctl("POST", "/_hangar/seed/cloudtrail", dict(spec, replace=True))
    again = [e["EventId"] for p in all_pages(ct.lookup_events, "NextToken", "NextToken", "Events")
             for e in p]
    assert again == ids_before
    explicit = emu.ctl("POST", "/_hangar/seed/cloudtrail", {"account": ACCOUNT, "events": [{
        "EventId": "11111111-2222-3333-4444-555555555555", "EventName": "StopWorkspaces",
        "EventTime": "2025-02-01T12:00:00Z", "Username": "carol",
        "Resources": [{"ResourceType": "AWS::WorkSpaces::Workspace", "ResourceName": "ws-abc"}],
    }]})
    assert explicit == {"count": 1, "total": 601}
    newest = ct.lookup_events(MaxResults=1, LookupAttributes=[
        {"AttributeKey": "Username", "AttributeValue": "carol"}])["Events"]
    assert newest[0]["EventId"] == "11111111-2222-3333-4444-555555555555"
    ok("CloudTrail seeding deterministic across reseed; explicit events")

    # Throttling: default 2 calls per sliding second, no SDK retries here.
    emu.ctl("POST", "/_hangar/config", {"lookup_events_per_second": 2})
    emu.ctl("POST", "/_hangar/stats/reset")
    time.sleep(1.1)
    ct1 = emu.client("cloudtrail", attempts=1)
    outcomes = []
    for _ in range(10):
        try:
            ct1.lookup_events(MaxResults=1)
            outcomes.append("ok")
        except ClientError as err:
            assert err.response["Error"]["Code"] == "ThrottlingException"
            assert err.response["Error"]["Message"] == "Rate exceeded"
            outcomes.append("throttled")
    assert outcomes[:2] == ["ok", "ok"] and outcomes.count("ok") <= 3, outcomes
    stats = emu.ctl("GET", "/_hangar/stats")
    assert stats["throttled"]["LookupEvents"] == outcomes.count("throttled")
    assert stats["calls"]["LookupEvents"] == 10
    time.sleep(1.05)
    ct1.lookup_events(MaxResults=1)
    # Another region has its own budget.
    emu.client("cloudtrail", region="eu-west-1", attempts=1).lookup_events(MaxResults=1)
    ok(f"LookupEvents rate limit: {outcomes.count('throttled')}/10 rapid calls throttled, "
       "counted in stats, recovers after 1s")
    emu.ctl("POST", "/_hangar/config", {"lookup_events_per_second": 0})

    # Any operation can be given a quota: JSON (WorkSpaces) and query (STS)
    # protocols both answer ThrottlingException past it.
    emu.ctl("POST", "/_hangar/config", {"operation_rates": {"DescribeWorkspaceBundles": 3, "GetCallerIdentity": 2}})
    emu.ctl("POST", "/_hangar/stats/reset")
    ws1 = emu.client("workspaces", attempts=1)
    sts1 = emu.client("sts", attempts=1)
    for client, call, limit in ((ws1, ws1.describe_workspace_bundles, 3), (sts1, sts1.get_caller_identity, 2)):
        codes = []
        for _ in range(8):
            try:
                call()
                codes.append("ok")
            except ClientError as err:
                codes.append(err.response["Error"]["Code"])
        assert codes[:limit] == ["ok"] * limit and set(codes[limit:]) <= {"ok", "ThrottlingException"}, codes
        assert "ThrottlingException" in codes, codes
    stats = emu.ctl("GET", "/_hangar/stats")["throttled"]
    assert stats["DescribeWorkspaceBundles"] >= 1 and stats["GetCallerIdentity"] >= 1, stats
    # A service-wide token bucket (AWS's WorkSpaces rate: 2/s, bursts of 5):
    # every WorkSpaces operation draws on it, other services do not.
    emu.ctl("POST", "/_hangar/config", {"operation_rates": {"workspaces": {"rate": 2, "burst": 5}}})
    codes = []
    for i in range(10):
        try:
            (ws1.describe_workspace_bundles if i % 2 else ws1.describe_workspace_directories)()
            codes.append("ok")
        except ClientError as err:
            codes.append(err.response["Error"]["Code"])
    assert codes[:5] == ["ok"] * 5 and codes.count("ok") <= 6, codes
    sts1.get_caller_identity()
    time.sleep(1.05)
    ws1.describe_workspace_bundles()
    ws1.describe_workspace_directories()
    refused = emu.ctl("POST", "/_hangar/config", {"operation_rates": {"DescribeTags": "fast"}}, expect=400)
    assert "operation_rates" in refused["error"], refused
    emu.ctl("POST", "/_hangar/config", {"operation_rates": {}})
    ok(f"operation quotas: WorkSpaces and STS throttled past their rate ({stats}); "
       "a service-wide token bucket covers every WorkSpaces operation")


def test_costs(emu: Emulator) -> None:
    emu.ctl("POST", "/_hangar/seed/costs", {"account": ACCOUNT, "start": "2025-01-01",
                                            "end": "2025-01-31", "seed": 1})
    dump = emu.ctl("GET", f"/_hangar/costs?account={ACCOUNT}")["days"]
    assert len(dump) == 30
    ce = emu.client("ce")
    q = dict(TimePeriod={"Start": "2025-01-01", "End": "2025-01-31"}, Granularity="DAILY",
             Metrics=["UnblendedCost", "AmortizedCost"])
    pages = all_pages(ce.get_cost_and_usage, "NextPageToken", "NextPageToken", "ResultsByTime", **q)
    assert [len(p) for p in pages] == [5] * 6
    results = [r for p in pages for r in p]
    assert [r["TimePeriod"]["Start"] for r in results] == sorted(dump)
    for r in results:
        expected = sum(Decimal(c["UnblendedCost"]) for c in dump[r["TimePeriod"]["Start"]])
        assert Decimal(r["Total"]["UnblendedCost"]["Amount"]) == expected
        assert r["Total"]["UnblendedCost"]["Unit"] == "USD" and r["Groups"] == []
        assert r["Total"]["AmortizedCost"]["Amount"] != r["Total"]["UnblendedCost"]["Amount"]
        decimals = r["Total"]["UnblendedCost"]["Amount"].partition(".")[2]
        assert len(decimals) <= 10
    assert [r["Estimated"] for r in results] == [False] * 27 + [True] * 3
    ok("GetCostAndUsage: 30 days in 6 pages of 5, exact decimal totals, last 3 days Estimated")

    grouped = ce.get_cost_and_usage(
        **q, GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"},
                      {"Type": "DIMENSION", "Key": "USAGE_TYPE"}])
    assert grouped["GroupDefinitions"] == [{"Type": "DIMENSION", "Key": "SERVICE"},
                                           {"Type": "DIMENSION", "Key": "USAGE_TYPE"}]
    day = grouped["ResultsByTime"][0]
    cells = {(c["service"], c["usage_type"]): c["UnblendedCost"] for c in dump["2025-01-01"]}
    got = {tuple(g["Keys"]): g["Metrics"]["UnblendedCost"]["Amount"] for g in day["Groups"]}
    assert got == cells and day["Total"] == {}
    assert "NextPageToken" in grouped
    ok("GetCostAndUsage: GroupBy SERVICE+USAGE_TYPE returns exact per-cell amounts")

    wsq = dict(q, Metrics=["UnblendedCost"],
               Filter={"Dimensions": {"Key": "SERVICE", "Values": ["Amazon WorkSpaces"]}},
               GroupBy=[{"Type": "DIMENSION", "Key": "USAGE_TYPE"}])
    ws_pages = all_pages(ce.get_cost_and_usage, "NextPageToken", "NextPageToken",
                         "ResultsByTime", **wsq)
    for r in (r for p in ws_pages for r in p):
        ws_cells = {c["usage_type"]: c["UnblendedCost"] for c in dump[r["TimePeriod"]["Start"]]
                    if c["service"] == "Amazon WorkSpaces"}
        got = {g["Keys"][0]: g["Metrics"]["UnblendedCost"]["Amount"] for g in r["Groups"]}
        assert got == ws_cells, (got, ws_cells)
    ok("GetCostAndUsage: WorkSpaces-only filter grouped by USAGE_TYPE")

    before = ce.get_cost_and_usage(**dict(q, TimePeriod={"Start": "2025-01-29", "End": "2025-01-30"}))
    emu.ctl("POST", "/_hangar/costs/bump", {"account": ACCOUNT, "date": "2025-01-29",
                                            "service": "Amazon WorkSpaces",
                                            "usage_type": "USE1-AlwaysOn-Performance",
                                            "amount": "1000.0000000001"})
    after = ce.get_cost_and_usage(**dict(q, TimePeriod={"Start": "2025-01-29", "End": "2025-01-30"}))
    old_cell = next(Decimal(c["UnblendedCost"]) for c in dump["2025-01-29"]
                    if c["usage_type"] == "USE1-AlwaysOn-Performance")
    delta = (Decimal(after["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"])
             - Decimal(before["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]))
    assert delta == Decimal("1000.0000000001") - old_cell
    ok("costs/bump changes one cell; totals move by the exact difference")

    usage = ce.get_cost_and_usage(**dict(q, Metrics=["UsageQuantity"]))
    assert usage["ResultsByTime"][0]["Total"]["UsageQuantity"]["Unit"] == "N/A"
    outside = ce.get_cost_and_usage(**dict(q, TimePeriod={"Start": "2024-12-30", "End": "2025-01-01"}))
    assert [r["Total"]["UnblendedCost"]["Amount"] for r in outside["ResultsByTime"]] == ["0", "0"]
    emu.ctl("POST", "/_hangar/config", {"cost_page_days": 7})
    assert len(ce.get_cost_and_usage(**q)["ResultsByTime"]) == 7
    emu.ctl("POST", "/_hangar/config", {"cost_page_days": 5})
    for bad in (dict(q, Granularity="MONTHLY"),
                dict(q, TimePeriod={"Start": "2025-01-05", "End": "2025-01-05"}),
                dict(q, Metrics=["BogusCost"]),
                dict(q, GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}] * 2)):
        expect_error(lambda: ce.get_cost_and_usage(**bad), "ValidationException", 400)
    ok("GetCostAndUsage: UsageQuantity, empty days, page size config, validation errors")


def test_faults(emu: Emulator) -> None:
    ws = emu.client("workspaces", attempts=1)
    emu.ctl("POST", "/_hangar/stats/reset")
    fid = emu.ctl("POST", "/_hangar/faults", {"operation": "DescribeWorkspaces", "times": 2,
                                             "status": 500, "code": "InternalFailure",
                                             "message": "boom"})["id"]
    expect_error(lambda: ws.describe_workspaces(Limit=1), "InternalFailure", 500)
    expect_error(lambda: ws.describe_workspaces(Limit=1), "InternalFailure", 500)
    ws.describe_workspaces(Limit=1)
    ws.describe_workspace_directories()  # other operations never affected
    ok(f"fault #{fid}: times=2 fails exactly two calls")

    emu.ctl("POST", "/_hangar/faults", {"operation": "DescribeWorkspacesConnectionStatus",
                                       "after": 1, "times": 1, "code": "ThrottlingException",
                                       "message": "Rate exceeded"})
    ws.describe_workspaces_connection_status()
    expect_error(lambda: ws.describe_workspaces_connection_status(), "ThrottlingException", 400)
    ws.describe_workspaces_connection_status()
    # The SDK's own retry hides a single throttle.
    emu.ctl("POST", "/_hangar/faults", {"operation": "DescribeWorkspaceBundles", "times": 1,
                                       "code": "ThrottlingException"})
    retrying = emu.client("workspaces")
    resp = retrying.describe_workspace_bundles(Owner="AMAZON")
    assert resp["ResponseMetadata"]["RetryAttempts"] == 1
    ok("fault after=1: second call fails, first and third pass; SDK retry absorbs a throttle")

    emu.ctl("POST", "/_hangar/faults", {"operation": "DescribeTags", "delay_ms": 400,
                                       "status": None, "times": 1})
    t0 = time.monotonic()
    ws.describe_workspace_directories()
    fast = time.monotonic() - t0
    some_id = ws.describe_workspaces(Limit=1)["Workspaces"][0]["WorkspaceId"]
    t0 = time.monotonic()
    assert ws.describe_tags(ResourceId=some_id)["TagList"]
    slow = time.monotonic() - t0
    t0 = time.monotonic()
    ws.describe_tags(ResourceId=some_id)
    assert slow >= 0.4 and time.monotonic() - t0 < 0.3 and fast < 0.3, (slow, fast)
    ok(f"delay-only fault: call took {slow:.2f}s then succeeded; next call fast")

    ws_other_key = emu.client("workspaces", key="AKIAHANGARFAULTKEY01", attempts=1)
    emu.ctl("POST", "/_hangar/faults", {"operation": "*", "access_key": "AKIAHANGARFAULTKEY01",
                                       "status": 403, "code": "AccessDeniedException",
                                       "message": "nope"})
    expect_error(lambda: ws_other_key.describe_workspaces(), "AccessDeniedException", 403)
    ws.describe_workspaces(Limit=1)
    ok("operation '*' + access_key fault only hits that key")

    listing = emu.ctl("GET", "/_hangar/faults")["faults"]
    assert listing[0]["fired"] == 2 and listing[0]["seen"] == 2
    stats = emu.ctl("GET", "/_hangar/stats")
    assert stats["faults_fired"]["DescribeWorkspaces"] == 3, stats
    assert stats["faults_fired"]["DescribeWorkspacesConnectionStatus"] == 1
    assert stats["calls"]["DescribeWorkspaces"] == 6, stats
    emu.ctl("DELETE", "/_hangar/faults")
    assert emu.ctl("GET", "/_hangar/faults")["faults"] == []
    ws_other_key.describe_workspaces(Limit=1)
    ok("fault listing and stats count fired faults; DELETE clears")

    # Raw wire format of a JSON error, as the Rust SDK sees it.
    emu.ctl("POST", "/_hangar/faults", {"operation": "DescribeWorkspaces", "times": 1,
                                       "code": "ThrottlingException", "message": "Rate exceeded"})
    req = urllib.request.Request(emu.url + "/", data=b"{}", method="POST", headers={
        "X-Amz-Target": "WorkspacesService.DescribeWorkspaces",
        "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/workspaces/"
                         "aws4_request, SignedHeaders=host, Signature=00"})
    try:
        urllib.request.urlopen(req)
        raise AssertionError("expected HTTP 400")
    except urllib.error.HTTPError as err:
        assert err.code == 400 and err.headers["x-amzn-ErrorType"] == "ThrottlingException"
        assert json.loads(err.read()) == {"__type": "ThrottlingException", "message": "Rate exceeded"}
    ok("JSON error wire format: 400, x-amzn-ErrorType header, __type/message body")


def test_sts(emu: Emulator) -> None:
    denied_arn = f"arn:aws:iam::{ROLE_ACCOUNT}:role/HangarDenied"
    allowed_arn = f"arn:aws:iam::{ROLE_ACCOUNT}:role/HangarReader"
    emu.ctl("POST", "/_hangar/faults", {"operation": "AssumeRole", "match": denied_arn,
                                       "status": 403, "code": "AccessDenied",
                                       "message": f"not authorized to perform sts:AssumeRole on {denied_arn}"})
    sts = emu.client("sts", attempts=1)
    err = expect_error(lambda: sts.assume_role(RoleArn=denied_arn, RoleSessionName="hangar"),
                       "AccessDenied", 403)
    assert err.response["Error"]["Type"] == "Sender"
    assert denied_arn in err.response["Error"]["Message"]
    ok("AssumeRole refused: AccessDenied/403 in STS XML error format (fault matched on role ARN)")

    creds = sts.assume_role(RoleArn=allowed_arn, RoleSessionName="hangar")["Credentials"]
    role_sts = emu.client("sts", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"],
                          token=creds["SessionToken"])
    identity = role_sts.get_caller_identity()
    assert identity["Account"] == ROLE_ACCOUNT, identity
    emu.ctl("POST", "/_hangar/seed/workspaces", {"account": ROLE_ACCOUNT, "region": "us-east-1",
                                                "directories": 1, "workspaces": 5, "bundles": 1})
    role_ws = emu.client("workspaces", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"],
                         token=creds["SessionToken"])
    mine = role_ws.describe_workspaces()["Workspaces"]
    assert len(mine) == 5 and all(w["UserName"].startswith("user") for w in mine)
    assert len(emu.client("workspaces").describe_workspaces(Limit=25)["Workspaces"]) == 25
    ok("AssumeRole succeeds; its credentials act in account 111111111111 (5 workspaces)")
    emu.ctl("DELETE", "/_hangar/faults")


def test_control_errors_and_reset(emu: Emulator) -> None:
    emu.ctl("POST", "/_hangar/seed/workspaces", {"workspaces": "many"}, expect=400)
    emu.ctl("POST", "/_hangar/seed/workspaces", {"account": "abc"}, expect=400)
    emu.ctl("POST", "/_hangar/faults", {"times": 1}, expect=400)
    emu.ctl("POST", "/_hangar/config", {"nope": 1}, expect=400)
    emu.ctl("POST", "/_hangar/seed/costs", {"start": "2025-01-05", "end": "2025-01-01"}, expect=400)
    emu.ctl("GET", "/_hangar/nothing", expect=404)
    ok("invalid control input -> 400 with a message")

    emu.ctl("POST", "/_hangar/reset")
    assert emu.client("workspaces").describe_workspaces()["Workspaces"] == []
    assert emu.client("cloudtrail").lookup_events()["Events"] == []
    assert emu.ctl("GET", "/_hangar/stats")["calls"] == {"DescribeWorkspaces": 1, "LookupEvents": 1}
    assert emu.ctl("GET", "/_hangar/config")["lookup_events_per_second"] == 2
    ok("reset clears moto backends, stores, stats and config")


def test_seed_timing(emu: Emulator) -> float:
    t0 = time.monotonic()
    seeded = emu.ctl("POST", "/_hangar/seed/workspaces", {"directories": 5, "workspaces": 5000,
                                                         "bundles": 6, "tags_per_workspace": 2})
    elapsed = time.monotonic() - t0
    assert len(seeded["workspace_ids"]) == 5000 and elapsed < 5, elapsed
    ws = emu.client("workspaces")
    t0 = time.monotonic()
    count = sum(len(p) for p in all_pages(ws.describe_workspaces, "NextToken", "NextToken",
                                          "Workspaces"))
    listing = time.monotonic() - t0
    assert count == 5000
    ok(f"seed 5000 workspaces over HTTP in {elapsed:.2f}s; listing them (200 pages) took {listing:.2f}s")
    return elapsed


def main() -> None:
    emu = Emulator()
    try:
        test_workspaces(emu)
        test_cloudtrail(emu)
        test_costs(emu)
        test_faults(emu)
        test_sts(emu)
        test_control_errors_and_reset(emu)
        test_seed_timing(emu)
    finally:
        rc = emu.stop()
    assert rc == 0, f"emulator exit code on SIGTERM: {rc}"
    ok("SIGTERM: clean exit (code 0)")
    print(f"all {checks} checks passed")


if __name__ == "__main__":
    main()
