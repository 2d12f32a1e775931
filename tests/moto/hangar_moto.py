#!/usr/bin/env python3
"""Hangar's AWS emulator for integration tests.

Runs moto's server app (every service behind one endpoint) wrapped in a WSGI
middleware that:

* serves the few operations Hangar depends on that moto lacks or gets wrong
  for our purposes (pagination, connection status, bundles, CloudTrail
  LookupEvents, Cost Explorer GetCostAndUsage);
* injects faults (errors, delays) and enforces per-operation request quotas
  per account and region (CloudTrail's 2 LookupEvents per second by
  default), so retry, back-off and pacing can be exercised;
* exposes a JSON control API under /_hangar/ to seed data quickly
  in-process (directly into moto's backends) and to inspect call statistics.

Usage:  python3 tests/moto/hangar_moto.py --port 5555 [--verbose]
        (--port 0 picks a free port; the chosen port is printed on stdout as
        "HANGAR_MOTO_PORT=<port>".)

Control API (JSON in/out; bad input -> 400 {"error": "..."}):
  GET    /_hangar/health                 -> {"ok": true}
  POST   /_hangar/seed/workspaces        {account, region, directories, workspaces,
                                          bundles, tags_per_workspace, bundle_owner?,
                                          states?} -> {directory_ids, workspace_ids, bundle_ids}
  POST   /_hangar/workspaces/terminate   {account, region, workspace_ids}
  POST   /_hangar/workspaces/state       {account, region, workspace_ids, state}
  POST   /_hangar/workspaces/connection  {account, region, statuses: {ws_id: {...}}}
  POST   /_hangar/seed/cloudtrail        {account, region, count, start, end,
                                          other_sources, seed?, replace?, events?}
  POST   /_hangar/seed/costs             {account, start, end, services?, seed?}
  POST   /_hangar/seed/organization      {accounts: [{id, name, state?}]} -> {accounts}
                                          (the caller's account becomes the management
                                          account; members replace earlier ones)
  POST   /_hangar/costs/bump             {account, date, service, usage_type, amount, ...}
  GET    /_hangar/costs?account=...      stored daily cells (expected values for tests)
  POST   /_hangar/faults                 {operation, times, after, status, code, message,
                                          delay_ms, match, access_key} -> {id}
  GET    /_hangar/faults  | DELETE /_hangar/faults | DELETE /_hangar/faults/<id>
  GET    /_hangar/stats   | POST /_hangar/stats/reset
  GET|POST /_hangar/config               {lookup_events_per_second, operation_rates,
                                          cost_page_days, cost_estimated_days,
                                          connection_base_time}
  POST   /_hangar/reset

Only the Python standard library plus moto/boto3/werkzeug are used.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import datetime as dt
import hashlib
import io
import json
import re
import signal
import sys
import threading
import time
import uuid
from collections import defaultdict, deque
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Callable
from urllib.parse import parse_qs, unquote_plus

from werkzeug.serving import WSGIRequestHandler, make_server

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import BaseResponse
from moto.ds.models import Directory, ds_backends
from moto.ec2 import ec2_backends
from moto.iam.models import get_account_id_from
from moto.moto_api._internal.models import moto_api_backend
from moto.organizations.models import organizations_backends
from moto.server import DomainDispatcherApplication, create_backend_app
from moto.workspaces.models import Workspace, workspaces_backends

DEFAULT_REGION = "us-east-1"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"

# Page sizes of the real services.
WORKSPACES_MAX_LIMIT = 25
BUNDLES_PAGE_SIZE = 25
CONNECTION_STATUS_PAGE_SIZE = 25
LOOKUP_EVENTS_MAX_RESULTS = 50

DEFAULT_CONFIG = {
    # CloudTrail allows 2 LookupEvents per second per account and region.
    "lookup_events_per_second": 2,
    # Other quotas per account and region, by operation or service signing
    # name: {"DescribeTags": 10} (calls per sliding second) or
    # {"workspaces": {"rate": 2, "burst": 5}} (a token bucket, AWS's
    # documented WorkSpaces rate). None by default.
    "operation_rates": {},
    # Number of days per GetCostAndUsage page (AWS pages by result size; a
    # small fixed number of days makes pagination easy to exercise).
    "cost_page_days": 5,
    # The last N seeded days of cost data are flagged Estimated.
    "cost_estimated_days": 3,
    # Datapoints per GetMetricData page (AWS: 100,800; smaller values make
    # paging easy to exercise).
    "metric_page_points": 100_800,
    # Fixed "now" for connection-status timestamps so answers are
    # reproducible across calls and runs (2025-01-01T00:00:00Z).
    "connection_base_time": 1735689600,
}

Q10 = Decimal("1e-10")

log_verbose = False


def log(msg: str) -> None:
    print(f"[hangar_moto] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def det_int(*parts: Any) -> int:
    """Deterministic 64-bit integer from the given parts (stable across runs,
    unlike hash())."""
    raw = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "big")


def det_hex(n: int, *parts: Any) -> str:
    raw = "\x1f".join(str(p) for p in parts).encode()
    return hashlib.sha256(raw).hexdigest()[:n]


def det_uuid(*parts: Any) -> str:
    raw = "\x1f".join(str(p) for p in parts).encode()
    return str(uuid.UUID(bytes=hashlib.sha256(raw).digest()[:16], version=4))


def encode_token(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(
        json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    ).decode()


def decode_token(token: Any, kind: str, error: Callable[[str], Exception]) -> dict:
    """Decode an opaque pagination token; the kind tag stops a token from one
    operation being replayed against another."""
    try:
        obj = json.loads(base64.urlsafe_b64decode(str(token).encode()))
    except (binascii.Error, ValueError, TypeError):
        raise error("Invalid NextToken")
    if not isinstance(obj, dict) or obj.get("k") != kind:
        raise error("Invalid NextToken")
    return obj


def format_decimal(value: Decimal) -> str:
    """Plain decimal string without exponent or trailing zeros, e.g.
    '12.3456789012', '0.5', '0' (AWS returns amounts as such strings)."""
    text = format(value.quantize(Q10, rounding=ROUND_HALF_EVEN), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def parse_instant(value: Any, what: str) -> float:
    """ISO-8601 string (naive = UTC) or epoch seconds -> epoch seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected ISO-8601 string or epoch seconds")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{what}: not an ISO-8601 timestamp: {value!r}")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.timestamp()
    raise ValueError(f"{what}: expected ISO-8601 string or epoch seconds")


def iso_z(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not DATE_RE.match(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """[start, end) as a list of days."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class ApiError(Exception):
    """An AWS error answer, rendered in the caller's protocol."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def validation(message: str) -> ApiError:
    return ApiError("ValidationException", message)


class ControlError(Exception):
    """Bad input to the /_hangar/ control API (always HTTP 400)."""


# --------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------

RPC_V2_PATH = re.compile(r"/service/([A-Za-z0-9_]+)/operation/([A-Za-z0-9_]+)")
CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/")


class AwsRequest:
    """What the middleware needs to know about an AWS API call."""

    def __init__(self, environ: dict[str, Any], body: bytes):
        self.environ = environ
        self.body = body
        self.body_text = body.decode("utf-8", errors="replace")
        self.target = environ.get("HTTP_X_AMZ_TARGET", "")
        content_type = environ.get("CONTENT_TYPE", "")
        auth = environ.get("HTTP_AUTHORIZATION", "")

        # Service/region come from the SigV4 credential scope, exactly what
        # moto's dispatcher uses to route the call.
        match = CREDENTIAL_RE.search(auth)
        self.access_key = match.group(1) if match else ""
        self.region = match.group(2) if match else DEFAULT_REGION
        self.signing_service = match.group(3) if match else ""

        # Derive the account the same way moto does (BaseResponse): an
        # explicit header, else the access key, which only counts if it looks
        # like a real 20-character key id (so "testing" maps to the default
        # account, while STS temporary keys map to the assumed role's account).
        explicit = environ.get("HTTP_X_MOTO_ACCOUNT_ID")
        if explicit:
            self.account = explicit
        else:
            key_match = BaseResponse.access_key_regex.search(auth)
            self.account = (
                get_account_id_from(key_match.group(1))
                if key_match
                else DEFAULT_ACCOUNT_ID
            )

        self.is_json = bool(self.target) or "json" in content_type
        self.form: dict[str, list[str]] = {}
        # Smithy RPC v2 CBOR (CloudWatch): POST /service/<Service>/operation/<Op>.
        rpc = RPC_V2_PATH.fullmatch(environ.get("PATH_INFO", ""))
        self.is_cbor = bool(rpc) and environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor"
        if self.is_cbor:
            self.service_prefix, self.operation = rpc.group(1), rpc.group(2)
        elif self.target:
            prefix, _, self.operation = self.target.rpartition(".")
            # "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101" (boto3)
            # and "CloudTrail_20131101" (Rust SDK) name the same service.
            self.service_prefix = prefix.rpartition(".")[2]
        else:
            self.service_prefix = ""
            query = parse_qs(environ.get("QUERY_STRING", ""))
            if content_type.startswith("application/x-www-form-urlencoded"):
                self.form = parse_qs(self.body_text)
            action = (self.form.get("Action") or query.get("Action") or [""])[0]
            self.operation = action or (
                f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"
            )
        self._params: dict[str, Any] | None = None

    @property
    def params(self) -> dict[str, Any]:
        if self._params is None:
            if not self.body.strip():
                self._params = {}
            else:
                try:
                    parsed = json.loads(self.body)
                except ValueError:
                    raise ApiError("SerializationException", "Malformed JSON body")
                if not isinstance(parsed, dict):
                    raise ApiError("SerializationException", "Body must be an object")
                self._params = parsed
        return self._params


def error_response(req: AwsRequest | None, err: ApiError) -> tuple[int, list, bytes]:
    if req is not None and req.is_cbor:
        import cbor2

        body = cbor2.dumps({"__type": f"{CLOUDWATCH_ERROR_NS}{err.code}", "message": err.message})
        headers = [
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ]
        return err.status, headers, body
    if req is None or req.is_json:
        body = json.dumps({"__type": err.code, "message": err.message}).encode()
        headers = [
            ("Content-Type", JSON_CONTENT_TYPE),
            ("x-amzn-ErrorType", err.code),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ]
        return err.status, headers, body
    # Query protocol (STS and friends): the XML shape the SDKs parse.
    kind = "Sender" if err.status < 500 else "Receiver"
    request_id = str(uuid.uuid4())
    body = (
        f'<ErrorResponse xmlns="{STS_XMLNS}"><Error><Type>{kind}</Type>'
        f"<Code>{xml_escape(err.code)}</Code><Message>{xml_escape(err.message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    return err.status, headers, body


def xml_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


# --------------------------------------------------------------------------
# Emulator state (everything here is guarded by Emulator.lock)
# --------------------------------------------------------------------------


class Fault:
    def __init__(self, fault_id: int, spec: dict[str, Any]):
        if not isinstance(spec, dict):
            raise ControlError("fault must be a JSON object")
        self.id = fault_id
        self.operation = spec.get("operation")
        if not isinstance(self.operation, str) or not self.operation:
            raise ControlError("fault.operation must be an operation name or '*'")
        self.times = spec.get("times")
        self.after = spec.get("after", 0)
        if self.times is not None and (not isinstance(self.times, int) or self.times < 0):
            raise ControlError("fault.times must be a non-negative integer or null")
        if not isinstance(self.after, int) or self.after < 0:
            raise ControlError("fault.after must be a non-negative integer")
        self.code = spec.get("code")
        # A code without a status means a 400; with neither, the fault is a
        # pure delay and the call then proceeds normally.
        self.status = spec.get("status", 400 if self.code else None)
        if self.status is not None:
            if not isinstance(self.status, int) or not 100 <= self.status <= 599:
                raise ControlError("fault.status must be an HTTP status or null")
            if not self.code:
                self.code = "InternalFailure" if self.status >= 500 else "BadRequest"
        self.message = spec.get("message") or "Injected fault"
        self.delay_ms = spec.get("delay_ms", 0) or 0
        if not isinstance(self.delay_ms, (int, float)) or self.delay_ms < 0:
            raise ControlError("fault.delay_ms must be a non-negative number")
        if self.status is None and not self.delay_ms:
            raise ControlError("fault needs a status/code, a delay_ms, or both")
        self.match = spec.get("match")
        self.access_key = spec.get("access_key")
        for name in ("match", "access_key", "code", "message"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ControlError(f"fault.{name} must be a string")
        self.seen = 0
        self.fired = 0

    def applies_to(self, req: AwsRequest) -> bool:
        if self.operation not in ("*", req.operation):
            return False
        if self.access_key is not None and self.access_key != req.access_key:
            return False
        if self.match is not None:
            # Query-protocol bodies are form-encoded, so also look at the
            # decoded text: a test can match on a raw role ARN.
            if self.match not in req.body_text and self.match not in unquote_plus(
                req.body_text
            ):
                return False
        return True

    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "times": self.times,
            "after": self.after,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "delay_ms": self.delay_ms,
            "match": self.match,
            "access_key": self.access_key,
            "seen": self.seen,
            "fired": self.fired,
        }


class Emulator:
    def __init__(self) -> None:
        # One lock for our stores *and* moto's backends: moto's in-memory
        # dicts are not safe against our in-process seeding running
        # concurrently with served requests.
        self.lock = threading.RLock()
        self.reset_own_state()

    def reset_own_state(self) -> None:
        self.config: dict[str, Any] = dict(DEFAULT_CONFIG)
        self.faults: list[Fault] = []
        self.next_fault_id = 1
        self.calls: dict[str, int] = defaultdict(int)
        self.throttled: dict[str, int] = defaultdict(int)
        self.faults_fired: dict[str, int] = defaultdict(int)
        # (account, region) -> {bundle_id: bundle dict}
        self.bundles: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
        # (account, region) -> {workspace_id: explicit connection status}
        self.connection_overrides: dict[tuple[str, str], dict[str, dict]] = (
            defaultdict(dict)
        )
        # (account, region) -> running counters so repeated seeding yields
        # fresh (but still deterministic) ids.
        self.serials: dict[tuple[str, str, str], int] = defaultdict(int)
        # (account, region) -> {event_id: event}
        self.events: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
        self.rate_windows: dict[tuple[str, str, str], deque] = defaultdict(deque)
        self.buckets: dict[tuple[str, str, str], tuple[float, float]] = {}
        # account -> {"days": {date: {(service, usage_type): cell}}, "end": date}
        self.costs: dict[str, dict[str, Any]] = {}

    def next_serial(self, account: str, region: str, kind: str) -> int:
        self.serials[(account, region, kind)] += 1
        return self.serials[(account, region, kind)]


EMU = Emulator()


# --------------------------------------------------------------------------
# WorkSpaces
# --------------------------------------------------------------------------


def ws_backend(account: str, region: str):
    return workspaces_backends[account][region]


def check_limit(value: Any, maximum: int, default: int, name: str = "limit") -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise validation(f"1 validation error detected: Value at '{name}' must be an integer")
    if value < 1:
        raise validation(
            f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
            "constraint: Member must have value greater than or equal to 1"
        )
    if value > maximum:
        raise validation(
            f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
            f"constraint: Member must have value less than or equal to {maximum}"
        )
    return value


def check_id_list(value: Any, maximum: int, name: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise validation(f"{name} must be a list of strings")
    if len(value) < 1 or len(value) > maximum:
        raise validation(
            f"1 validation error detected: Value at '{name}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {maximum} and greater than or equal to 1"
        )
    return value


def paginate_sorted(
    items: list[Any], key: Callable[[Any], str], token: Any, kind: str, limit: int
) -> tuple[list[Any], str | None]:
    """Keyset pagination over items sorted by a unique string key: the token
    remembers the last key served, so pages stay consistent even when items
    are removed between calls (a terminated workspace does not shift others)."""
    items = sorted(items, key=key)
    if token is not None:
        after = decode_token(token, kind, validation).get("after")
        if not isinstance(after, str):
            raise validation("Invalid NextToken")
        items = [item for item in items if key(item) > after]
    page = items[:limit]
    next_token = (
        encode_token({"k": kind, "after": key(page[-1])}) if len(items) > limit else None
    )
    return page, next_token


def workspace_to_json(ws: Workspace) -> dict[str, Any]:
    """The DescribeWorkspaces item shape. Moto's own to_dict_pending() blanks
    IpAddress/SubnetId, so seeded values live on extra attributes."""
    out: dict[str, Any] = {
        "WorkspaceId": ws.workspace_id,
        "DirectoryId": ws.directory_id,
        "UserName": ws.user_name,
        "IpAddress": getattr(ws, "ip_address", ""),
        "State": ws.state,
        "BundleId": ws.bundle_id,
        "SubnetId": getattr(ws, "subnet_id", ""),
        "ComputerName": ws.computer_name,
        "UserVolumeEncryptionEnabled": bool(ws.user_volume_encryption_enabled),
        "RootVolumeEncryptionEnabled": bool(ws.root_volume_encryption_enabled),
        "WorkspaceProperties": dict(ws.workspace_properties or {}),
        "ModificationStates": list(ws.modification_states),
    }
    primary = getattr(ws, "standby_of", None)
    if primary:
        out["RelatedWorkspaces"] = [
            {"WorkspaceId": primary[1], "Region": primary[0], "State": "AVAILABLE", "Type": "PRIMARY"}
        ]
    if ws.volume_encryption_key:
        out["VolumeEncryptionKey"] = ws.volume_encryption_key
    if ws.error_code:
        out["ErrorCode"] = ws.error_code
        out["ErrorMessage"] = ws.error_message
    return {k: v for k, v in out.items() if v != ""}


def op_describe_workspaces(req: AwsRequest) -> dict[str, Any]:
    p = req.params
    limit = check_limit(p.get("Limit"), WORKSPACES_MAX_LIMIT, WORKSPACES_MAX_LIMIT)
    workspace_ids = check_id_list(p.get("WorkspaceIds"), 25, "workspaceIds")
    directory_id = p.get("DirectoryId")
    bundle_id = p.get("BundleId")
    user_name = p.get("UserName")
    # Same combination rules (and error code) as AWS and moto.
    if sum(bool(x) for x in (workspace_ids, directory_id, bundle_id)) > 1:
        raise ApiError(
            "InvalidParameterValuesException",
            "An invalid number of parameters provided with DescribeWorkspaces. Only one of "
            "the following are allowed to be specified: BundleId, DirectoryId, WorkSpaceIds, Filters.",
        )
    if user_name and not directory_id:
        raise ApiError(
            "InvalidParameterValuesException",
            "The DirectoryId parameter is required when UserName is used.",
        )
    items = list(ws_backend(req.account, req.region).workspaces.values())
    if workspace_ids:
        wanted = set(workspace_ids)
        items = [w for w in items if w.workspace_id in wanted]
    if directory_id:
        items = [w for w in items if w.directory_id == directory_id]
    if user_name:
        items = [w for w in items if w.user_name == user_name]
    if bundle_id:
        items = [w for w in items if w.bundle_id == bundle_id]
    page, token = paginate_sorted(
        items, lambda w: w.workspace_id, p.get("NextToken"), "ws", limit
    )
    out: dict[str, Any] = {"Workspaces": [workspace_to_json(w) for w in page]}
    if token:
        out["NextToken"] = token
    return out


def connection_status(account: str, region: str, ws: Workspace) -> dict[str, Any]:
    """A deterministic, plausible connection status derived from the id."""
    override = EMU.connection_overrides[(account, region)].get(ws.workspace_id)
    base = int(EMU.config["connection_base_time"])
    h = det_int("conn", ws.workspace_id)
    if ws.state == "STOPPED":
        state = "DISCONNECTED"
    elif ws.state == "AVAILABLE":
        roll = h % 100
        state = "CONNECTED" if roll < 45 else "DISCONNECTED" if roll < 95 else "UNKNOWN"
    else:
        state = "UNKNOWN"
    out: dict[str, Any] = {
        "WorkspaceId": ws.workspace_id,
        "ConnectionState": state,
        "ConnectionStateCheckTimestamp": base - (h >> 8) % 600,
    }
    if state == "CONNECTED":
        out["LastKnownUserConnectionTimestamp"] = base - (h >> 16) % 3600
    elif (h >> 24) % 100 >= 5:  # ~5% never connected: no timestamp at all
        out["LastKnownUserConnectionTimestamp"] = base - (h >> 32) % (60 * 86400)
    if override:
        out.update(override)
        out = {k: v for k, v in out.items() if v is not None}
    return out


def op_describe_workspaces_connection_status(req: AwsRequest) -> dict[str, Any]:
    p = req.params
    workspace_ids = check_id_list(p.get("WorkspaceIds"), 25, "workspaceIds")
    items = list(ws_backend(req.account, req.region).workspaces.values())
    if workspace_ids:
        # Unknown ids are silently omitted, as AWS does.
        wanted = set(workspace_ids)
        items = [w for w in items if w.workspace_id in wanted]
    page, token = paginate_sorted(
        items,
        lambda w: w.workspace_id,
        p.get("NextToken"),
        "conn",
        CONNECTION_STATUS_PAGE_SIZE,
    )
    out: dict[str, Any] = {
        "WorkspacesConnectionStatus": [
            connection_status(req.account, req.region, w) for w in page
        ]
    }
    if token:
        out["NextToken"] = token
    return out


def op_describe_workspace_bundles(req: AwsRequest) -> dict[str, Any]:
    p = req.params
    bundle_ids = check_id_list(p.get("BundleIds"), 25, "bundleIds")
    owner = p.get("Owner")
    if bundle_ids and owner:
        raise ApiError(
            "InvalidParameterValuesException",
            "BundleIds cannot be combined with any other filter.",
        )
    items = list(EMU.bundles[(req.account, req.region)].values())
    if bundle_ids:
        wanted = set(bundle_ids)
        items = [b for b in items if b["BundleId"] in wanted]
    elif owner:
        items = [b for b in items if b["Owner"] == owner]
    else:
        # Like AWS: no filter lists the bundles owned by the caller's account.
        items = [b for b in items if b["Owner"] == req.account]
    page, token = paginate_sorted(
        items, lambda b: b["BundleId"], p.get("NextToken"), "bundle", BUNDLES_PAGE_SIZE
    )
    out: dict[str, Any] = {"Bundles": page}
    if token:
        out["NextToken"] = token
    return out


def op_describe_workspace_directories(req: AwsRequest) -> dict[str, Any]:
    # moto 5.2.1 ignores Limit/NextToken here, so it is served from moto's
    # state with real pagination.
    p = req.params
    limit = check_limit(p.get("Limit"), WORKSPACES_MAX_LIMIT, WORKSPACES_MAX_LIMIT)
    directory_ids = check_id_list(p.get("DirectoryIds"), 25, "directoryIds")
    names = check_id_list(p.get("WorkspaceDirectoryNames"), 25, "workspaceDirectoryNames")
    items = list(ws_backend(req.account, req.region).workspace_directories.values())
    if directory_ids:
        wanted = set(directory_ids)
        items = [d for d in items if d.directory_id in wanted]
    if names:
        wanted_names = set(names)
        items = [d for d in items if d.directory_name in wanted_names]
    page, token = paginate_sorted(
        items, lambda d: d.directory_id, p.get("NextToken"), "dir", limit
    )
    out: dict[str, Any] = {"Directories": [d.to_dict() for d in page]}
    if token:
        out["NextToken"] = token
    return out


def op_modify_workspace_properties(req: AwsRequest) -> dict[str, Any]:
    """ModifyWorkspaceProperties (moto has none): running mode and AutoStop
    timeout, on a workspace AWS would let change them (AVAILABLE or STOPPED)."""
    params = req.params
    wid = params.get("WorkspaceId")
    props = params.get("WorkspaceProperties")
    if not isinstance(wid, str) or not isinstance(props, dict):
        raise validation("WorkspaceId and WorkspaceProperties are required")
    ws = ws_backend(req.account, req.region).workspaces.get(wid)
    if ws is None:
        raise ApiError("ResourceNotFoundException", f"The WorkSpace {wid} could not be found.")
    if ws.state not in ("AVAILABLE", "STOPPED"):
        raise ApiError(
            "InvalidResourceStateException",
            f"The WorkSpace {wid} is in state {ws.state}; its properties can be changed when AVAILABLE or STOPPED.",
        )
    mode = props.get("RunningMode")
    if mode is not None and mode not in ("AUTO_STOP", "ALWAYS_ON", "MANUAL"):
        raise validation(f"RunningMode {mode!r} is not AUTO_STOP, ALWAYS_ON or MANUAL")
    current = dict(ws.workspace_properties or {})
    if mode is not None:
        current["RunningMode"] = mode
        if mode == "AUTO_STOP":
            current.setdefault("RunningModeAutoStopTimeoutInMinutes", 60)
        else:
            current.pop("RunningModeAutoStopTimeoutInMinutes", None)
    if "RunningModeAutoStopTimeoutInMinutes" in props:
        timeout = props["RunningModeAutoStopTimeoutInMinutes"]
        if current.get("RunningMode") != "AUTO_STOP":
            raise ApiError("InvalidParameterValuesException",
                           "RunningModeAutoStopTimeoutInMinutes is only for AUTO_STOP WorkSpaces.")
        if not isinstance(timeout, int) or timeout <= 0 or timeout % 60:
            raise ApiError("InvalidParameterValuesException",
                           "RunningModeAutoStopTimeoutInMinutes must be a multiple of 60.")
        current["RunningModeAutoStopTimeoutInMinutes"] = timeout
    ws.workspace_properties = current
    return {}


def op_describe_tags(req: AwsRequest) -> dict[str, Any]:
    # moto answers an unknown id with a 500 (KeyError); AWS says
    # ResourceNotFoundException, which is what a terminated workspace needs.
    resource_id = req.params.get("ResourceId")
    if not isinstance(resource_id, str) or not resource_id:
        raise validation("ResourceId is required")
    backend = ws_backend(req.account, req.region)
    stores = {
        "ws-": backend.workspaces,
        "d-": backend.workspace_directories,
        "wsi-": backend.workspace_images,
    }
    for prefix, store in stores.items():
        if resource_id.startswith(prefix) and resource_id in store:
            return {"TagList": list(store[resource_id].tags or [])}
    raise ApiError("ResourceNotFoundException", "The resource could not be found.")


# ---- seeding ------------------------------------------------------------

BUNDLE_CATALOG = [
    # (name, compute type, root GiB, user GiB)
    ("Standard with Windows 10 (Server 2022 based)", "STANDARD", 80, 50),
    ("Performance with Windows 10 (Server 2022 based)", "PERFORMANCE", 80, 100),
    ("Value with Amazon Linux 2", "VALUE", 80, 10),
    ("Power with Windows 10 (Server 2022 based)", "POWER", 175, 100),
    ("PowerPro with Windows 10 (Server 2022 based)", "POWERPRO", 175, 100),
    ("Graphics.g4dn with Windows 10 (Server 2022 based)", "GRAPHICS_G4DN", 100, 100),
]

DEFAULT_STATE_WEIGHTS = {"AVAILABLE": 8, "STOPPED": 2}
TAG_KEYS = ["CostCenter", "Team", "Environment", "Owner"]
SEED_EPOCH = 1704067200  # 2024-01-01T00:00:00Z, creation time of seeded bundles


def get_int(spec: dict, name: str, default: int, lo: int = 0, hi: int = 10**6) -> int:
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ControlError(f"{name} must be an integer in [{lo}, {hi}]")
    return value


def get_account_region(spec: dict) -> tuple[str, str]:
    account = spec.get("account", DEFAULT_ACCOUNT_ID)
    region = spec.get("region", DEFAULT_REGION)
    if not isinstance(account, str) or not re.fullmatch(r"\d{12}", account):
        raise ControlError("account must be a 12-digit string")
    if not isinstance(region, str) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise ControlError("region must look like us-east-1")
    return account, region


def seed_directory(account: str, region: str) -> str:
    """Create a Simple AD directory in moto's DS backend and register it with
    WorkSpaces. The Directory object is built directly rather than through
    DS CreateDirectory, which caps an account at ~10 Simple AD directories and
    needs two subnets in different AZs anyway; we take those from the
    default VPC moto creates for every region."""
    ec2 = ec2_backends[account][region]
    vpc = ec2.get_default_vpc()
    subnets = sorted(
        ec2.describe_subnets(filters={"vpc-id": [vpc.id]}),
        key=lambda s: s.availability_zone,
    )
    by_az: dict[str, Any] = {}
    for subnet in subnets:
        by_az.setdefault(subnet.availability_zone, subnet)
    two = list(by_az.values())[:2]
    if len(two) < 2:
        raise ControlError(f"region {region} has fewer than two availability zones in moto")
    serial = EMU.next_serial(account, region, "directory")
    directory_id = "d-" + det_hex(10, "directory", account, region, serial)
    directory = Directory(
        account,
        region,
        name=f"corp{serial}.hangar.test",
        password="Hangar-Passw0rd!",
        directory_type="SimpleAD",
        size="Small",
        vpc_settings={
            "VpcId": vpc.id,
            "SubnetIds": [s.id for s in two],
            "AvailabilityZones": [s.availability_zone for s in two],
        },
        short_name=f"CORP{serial}",
        description=f"Hangar test directory {serial}",
    )
    # Deterministic id (moto draws a random one in __init__); the security
    # group moto created keeps the random id in its name, which is harmless.
    directory.directory_id = directory_id
    directory.alias = directory_id
    directory.access_url = f"{directory_id}.awsapps.com"
    ds_backends[account][region].directories[directory_id] = directory
    # moto's own registration path (looks the directory up in DS, creates the
    # WorkSpaces security group, builds the WorkSpaceDirectory).
    ws_backend(account, region).register_workspace_directory(
        directory_id=directory_id,
        subnet_ids=None,
        enable_self_service=False,
        tenancy="SHARED",
        tags=[{"Key": "Purpose", "Value": "hangar-test"}],
    )
    return directory_id


def seed_bundle(account: str, region: str, index: int, owner_mode: str) -> dict:
    name, compute, root_gib, user_gib = BUNDLE_CATALOG[index % len(BUNDLE_CATALOG)]
    bundle_id = "wsb-" + det_hex(9, "bundle", account, region, index)
    if owner_mode == "AMAZON":
        owner = "AMAZON"
    elif owner_mode == "self":
        owner = account
    else:  # mixed: even bundles public (AMAZON), odd ones custom
        owner = "AMAZON" if index % 2 == 0 else account
    if index >= len(BUNDLE_CATALOG):
        name = f"{name} #{index}"
    bundle = {
        "BundleId": bundle_id,
        "Name": name,
        "Owner": owner,
        "Description": f"{name} bundle for Hangar tests",
        "ImageId": "wsi-" + det_hex(9, "image", account, region, index),
        "RootStorage": {"Capacity": str(root_gib)},
        "UserStorage": {"Capacity": str(user_gib)},
        "ComputeType": {"Name": compute},
        "LastUpdatedTime": SEED_EPOCH + index * 86400,
        "CreationTime": SEED_EPOCH,
        "State": "AVAILABLE",
        "BundleType": "REGULAR",
    }
    EMU.bundles[(account, region)][bundle_id] = bundle
    return bundle


def control_seed_workspaces(spec: dict) -> dict:
    account, region = get_account_region(spec)
    n_dirs = get_int(spec, "directories", 1, 0, 50)
    n_ws = get_int(spec, "workspaces", 10, 0, 100000)
    n_bundles = get_int(spec, "bundles", 2, 0, 100)
    n_tags = get_int(spec, "tags_per_workspace", 0, 0, 50)
    owner_mode = spec.get("bundle_owner", "mixed")
    if owner_mode not in ("mixed", "AMAZON", "self"):
        raise ControlError("bundle_owner must be one of mixed, AMAZON, self")
    weights = spec.get("states", DEFAULT_STATE_WEIGHTS)
    if (
        not isinstance(weights, dict)
        or not weights
        or not all(isinstance(v, int) and v >= 0 for v in weights.values())
        or sum(weights.values()) == 0
    ):
        raise ControlError('states must map state names to weights, e.g. {"AVAILABLE": 8, "STOPPED": 2}')

    started = time.monotonic()
    backend = ws_backend(account, region)
    directory_ids = [seed_directory(account, region) for _ in range(n_dirs)]
    # With directories/bundles = 0, new workspaces go to existing ones.
    target_dirs = directory_ids or sorted(backend.workspace_directories)
    bundle_base = len(EMU.bundles[(account, region)])
    bundles = [
        seed_bundle(account, region, bundle_base + i, owner_mode) for i in range(n_bundles)
    ]
    target_bundles = bundles or sorted(
        EMU.bundles[(account, region)].values(), key=lambda b: b["BundleId"]
    )
    if n_ws and (not target_dirs or not target_bundles):
        raise ControlError("workspaces need at least one directory and one bundle")

    # A spread-out cycle of states: weights {AVAILABLE: 8, STOPPED: 2} give
    # two STOPPED in every ten, not clustered at the start.
    cycle = [state for state, w in sorted(weights.items()) for _ in range(w)]
    workspace_ids = []
    for _ in range(n_ws):
        serial = EMU.next_serial(account, region, "workspace")
        i = serial - 1
        workspace_id = "ws-" + det_hex(9, "workspace", account, region, serial)
        while workspace_id in backend.workspaces:  # vanishingly rare
            workspace_id = "ws-" + det_hex(9, "workspace", account, region, workspace_id)
        directory = backend.workspace_directories[target_dirs[i % len(target_dirs)]]
        bundle = target_bundles[i % len(target_bundles)]
        state = cycle[(i * 7) % len(cycle)]
        # Only AUTO_STOP workspaces can be STOPPED; the rest mix modes.
        running_mode = "AUTO_STOP" if state == "STOPPED" or i % 3 else "ALWAYS_ON"
        properties: dict[str, Any] = {"RunningMode": running_mode}
        if running_mode == "AUTO_STOP":
            properties["RunningModeAutoStopTimeoutInMinutes"] = 60
        properties["RootVolumeSizeGib"] = int(bundle["RootStorage"]["Capacity"])
        properties["UserVolumeSizeGib"] = int(bundle["UserStorage"]["Capacity"])
        properties["ComputeTypeName"] = bundle["ComputeType"]["Name"]
        tags = [
            {
                "Key": TAG_KEYS[k] if k < len(TAG_KEYS) else f"Tag{k}",
                "Value": f"{(TAG_KEYS[k] if k < len(TAG_KEYS) else 'tag').lower()}-{(i + k) % 5}",
            }
            for k in range(n_tags)
        ]
        ws = Workspace(
            workspace={
                "DirectoryId": directory.directory_id,
                "BundleId": bundle["BundleId"],
                "UserName": f"user{serial:04d}",
                "WorkspaceProperties": properties,
                "Tags": tags,
            },
            running_mode=running_mode,
            error_code="",
            error_msg="",
        )
        ws.workspace_id = workspace_id
        ws.state = state
        ws.computer_name = "WSAMZN-" + det_hex(8, "computer", workspace_id).upper()
        ws.subnet_id = directory.subnet_ids[i % len(directory.subnet_ids)]
        host = i % 250 + 4  # skip network/reserved addresses in each /24
        ws.ip_address = f"10.{(i // 250 >> 8) & 255}.{(i // 250) & 255}.{host}"
        backend.workspaces[workspace_id] = ws
        workspace_ids.append(workspace_id)

    log(
        f"seeded {account}/{region}: {n_dirs} directories, {n_bundles} bundles, "
        f"{n_ws} workspaces in {time.monotonic() - started:.2f}s"
    )
    return {
        "directory_ids": directory_ids,
        "workspace_ids": workspace_ids,
        "bundle_ids": [b["BundleId"] for b in bundles],
    }


def get_id_list(spec: dict, name: str) -> list[str]:
    value = spec.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ControlError(f"{name} must be a list of strings")
    return value


def control_terminate(spec: dict) -> dict:
    account, region = get_account_region(spec)
    backend = ws_backend(account, region)
    terminated, missing = [], []
    for workspace_id in get_id_list(spec, "workspace_ids"):
        if backend.workspaces.pop(workspace_id, None) is None:
            missing.append(workspace_id)
        else:
            terminated.append(workspace_id)
            EMU.connection_overrides[(account, region)].pop(workspace_id, None)
    return {"terminated": terminated, "missing": missing}


def control_set_state(spec: dict) -> dict:
    account, region = get_account_region(spec)
    state = spec.get("state")
    if not isinstance(state, str) or not state:
        raise ControlError("state must be a WorkSpace state such as STOPPED")
    backend = ws_backend(account, region)
    updated, missing = [], []
    for workspace_id in get_id_list(spec, "workspace_ids"):
        ws = backend.workspaces.get(workspace_id)
        if ws is None:
            missing.append(workspace_id)
        else:
            ws.state = state
            updated.append(workspace_id)
    return {"updated": updated, "missing": missing}


def control_set_standby(spec: dict) -> dict:
    """Makes workspaces standbys of a primary in another region (what
    CreateStandbyWorkspaces leaves): DescribeWorkspaces then lists that
    primary in their RelatedWorkspaces."""
    account, region = get_account_region(spec)
    primary_region = spec.get("primary_region")
    primary = spec.get("primary_workspace_id")
    if not isinstance(primary_region, str) or not isinstance(primary, str):
        raise ControlError("primary_region and primary_workspace_id are required")
    backend = ws_backend(account, region)
    for wid in get_id_list(spec, "workspace_ids"):
        ws = backend.workspaces.get(wid)
        if ws is None:
            raise ControlError(f"unknown workspace {wid}")
        ws.standby_of = (primary_region, primary)
    return {"ok": True}


def control_set_connection(spec: dict) -> dict:
    account, region = get_account_region(spec)
    statuses = spec.get("statuses")
    if not isinstance(statuses, dict):
        raise ControlError("statuses must map workspace ids to status objects")
    allowed = {
        "ConnectionState",
        "ConnectionStateCheckTimestamp",
        "LastKnownUserConnectionTimestamp",
    }
    for workspace_id, status in statuses.items():
        if not isinstance(status, dict) or not set(status) <= allowed:
            raise ControlError(f"status for {workspace_id} may only set {sorted(allowed)}")
        EMU.connection_overrides[(account, region)][workspace_id] = dict(status)
    return {"count": len(statuses)}


# --------------------------------------------------------------------------
# CloudTrail LookupEvents
# --------------------------------------------------------------------------

WORKSPACES_SOURCE = "workspaces.amazonaws.com"
WS_EVENTS = [
    # (event name, read only, weight, targets one workspace)
    ("DescribeWorkspaces", True, 6, False),
    ("DescribeWorkspaceDirectories", True, 2, False),
    ("StartWorkspaces", False, 3, True),
    ("StopWorkspaces", False, 3, True),
    ("RebootWorkspaces", False, 2, True),
    ("RebuildWorkspaces", False, 1, True),
    ("ModifyWorkspaceProperties", False, 1, True),
    ("CreateWorkspaces", False, 1, True),
    ("TerminateWorkspaces", False, 1, True),
    ("CreateTags", False, 1, True),
]
OTHER_EVENTS = [
    # (source, name, read only, resource type or None)
    ("ec2.amazonaws.com", "RunInstances", False, "AWS::EC2::Instance"),
    ("ec2.amazonaws.com", "DescribeInstances", True, None),
    ("s3.amazonaws.com", "CreateBucket", False, "AWS::S3::Bucket"),
    ("iam.amazonaws.com", "CreateUser", False, "AWS::IAM::User"),
    ("signin.amazonaws.com", "ConsoleLogin", False, None),
    ("sts.amazonaws.com", "AssumeRole", True, "AWS::IAM::Role"),
]
USERNAMES = ["admin", "hangar-automation", "alice", "bob"]
LOOKUP_KEYS = {
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
}


def ws_request_parameters(name: str, workspace_id: str | None, i: int) -> Any:
    request_key = {
        "StartWorkspaces": "startWorkspaceRequests",
        "StopWorkspaces": "stopWorkspaceRequests",
        "RebootWorkspaces": "rebootWorkspaceRequests",
        "RebuildWorkspaces": "rebuildWorkspaceRequests",
        "TerminateWorkspaces": "terminateWorkspaceRequests",
    }
    if name in request_key:
        return {request_key[name]: [{"workspaceId": workspace_id}]}
    if name == "ModifyWorkspaceProperties":
        return {"workspaceId": workspace_id, "workspaceProperties": {"runningMode": "AUTO_STOP"}}
    if name == "CreateWorkspaces":
        return {"workspaces": [{"userName": f"user{i % 10000:04d}"}]}
    if name == "CreateTags":
        return {"resourceId": workspace_id, "tags": [{"key": "Team", "value": f"team-{i % 4}"}]}
    if name == "DescribeWorkspaces":
        return {"limit": 25}
    return None


def build_event(
    account: str,
    region: str,
    *,
    event_id: str,
    name: str,
    source: str,
    when: float,
    username: str,
    read_only: bool,
    access_key: str,
    resources: list[dict[str, str]],
    request_parameters: Any = None,
    cloudtrail_event: Any = None,
) -> dict[str, Any]:
    if cloudtrail_event is None:
        source_ip = f"203.0.113.{det_int('ip', event_id) % 250 + 1}"
        cloudtrail_event = {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDA" + det_hex(16, "principal", username).upper(),
                "arn": f"arn:aws:iam::{account}:user/{username}",
                "accountId": account,
                "accessKeyId": access_key,
                "userName": username,
            },
            "eventTime": iso_z(when),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": source_ip,
            "userAgent": "aws-sdk-rust/1.0 os/linux lang/rust",
            "requestParameters": request_parameters,
            "responseElements": None,
            "requestID": det_uuid("request", event_id),
            "eventID": event_id,
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        }
    if not isinstance(cloudtrail_event, str):
        cloudtrail_event = json.dumps(cloudtrail_event, separators=(",", ":"))
    return {
        "EventId": event_id,
        "EventName": name,
        "ReadOnly": "true" if read_only else "false",
        "AccessKeyId": access_key,
        "EventTime": when,
        "EventSource": source,
        "Username": username,
        "Resources": resources,
        "CloudTrailEvent": cloudtrail_event,
    }


def spread_time(start: float, end: float, i: int, count: int, salt: str) -> int:
    """i-th of count instants evenly spread over [start, end) with a
    deterministic jitter, in whole seconds like CloudTrail."""
    frac = (det_int("jitter", salt, i) % 10000) / 10000
    return int(start + (end - start) * (i + frac) / count)


def control_seed_cloudtrail(spec: dict) -> dict:
    account, region = get_account_region(spec)
    store = EMU.events[(account, region)]
    if spec.get("replace"):
        store.clear()
    added = 0
    if "events" in spec:
        events = spec["events"]
        if not isinstance(events, list):
            raise ControlError("events must be a list of event objects")
        for index, raw in enumerate(events):
            store_event(store, explicit_event(account, region, raw, index))
            added += 1
    count = get_int(spec, "count", 0 if "events" in spec else 500, 0, 1_000_000)
    others = get_int(spec, "other_sources", 0, 0, 1_000_000)
    if count or others:
        seed = spec.get("seed", 1)
        now = int(time.time()) // 3600 * 3600
        try:
            end = parse_instant(spec.get("end", now), "end")
            start = parse_instant(spec.get("start", end - 7 * 86400), "start")
        except ValueError as exc:
            raise ControlError(str(exc))
        if start >= end:
            raise ControlError("start must be before end")
        # Resources point at real seeded workspaces when there are any, so
        # events and inventory line up; otherwise at synthetic ids.
        workspace_ids = spec.get("workspace_ids") or sorted(
            ws_backend(account, region).workspaces
        )
        total_weight = sum(w for _, _, w, _ in WS_EVENTS)
        for i in range(count):
            h = det_int("ws-event", seed, account, region, i)
            pick = h % total_weight
            for name, read_only, weight, targeted in WS_EVENTS:
                if pick < weight:
                    break
                pick -= weight
            workspace_id = None
            resources = []
            if targeted:
                workspace_id = (
                    workspace_ids[(h >> 16) % len(workspace_ids)]
                    if workspace_ids
                    else "ws-" + det_hex(9, "synthetic-ws", seed, (h >> 16) % 200)
                )
                resources = [
                    {"ResourceType": "AWS::WorkSpaces::Workspace", "ResourceName": workspace_id}
                ]
            username = USERNAMES[(h >> 32) % len(USERNAMES)]
            event_id = det_uuid("event", seed, account, region, "ws", i)
            store_event(
                store,
                build_event(
                    account,
                    region,
                    event_id=event_id,
                    name=name,
                    source=WORKSPACES_SOURCE,
                    when=spread_time(start, end, i, count, f"ws{seed}"),
                    username=username,
                    read_only=read_only,
                    access_key="AKIA" + det_hex(16, "key", account, username).upper(),
                    resources=resources,
                    request_parameters=ws_request_parameters(name, workspace_id, i),
                ),
            )
        for i in range(others):
            h = det_int("other-event", seed, account, region, i)
            source, name, read_only, resource_type = OTHER_EVENTS[h % len(OTHER_EVENTS)]
            resources = []
            if resource_type:
                resources = [
                    {
                        "ResourceType": resource_type,
                        "ResourceName": f"{name.lower()}-{det_hex(8, 'res', seed, i)}",
                    }
                ]
            username = USERNAMES[(h >> 32) % len(USERNAMES)]
            event_id = det_uuid("event", seed, account, region, "other", i)
            store_event(
                store,
                build_event(
                    account,
                    region,
                    event_id=event_id,
                    name=name,
                    source=source,
                    when=spread_time(start, end, i, others, f"other{seed}"),
                    username=username,
                    read_only=read_only,
                    access_key="AKIA" + det_hex(16, "key", account, username).upper(),
                    resources=resources,
                ),
            )
        added += count + others
    return {"count": added, "total": len(store)}


def store_event(store: dict[str, dict], event: dict) -> None:
    store[event["EventId"]] = event


def explicit_event(account: str, region: str, raw: Any, index: int) -> dict:
    if not isinstance(raw, dict):
        raise ControlError(f"events[{index}] must be an object")
    name = raw.get("EventName")
    if not isinstance(name, str) or not name:
        raise ControlError(f"events[{index}].EventName is required")
    try:
        when = parse_instant(raw.get("EventTime"), f"events[{index}].EventTime")
    except ValueError as exc:
        raise ControlError(str(exc))
    read_only = raw.get("ReadOnly", False)
    if isinstance(read_only, str):
        read_only = read_only.lower() == "true"
    resources = raw.get("Resources", [])
    if not isinstance(resources, list):
        raise ControlError(f"events[{index}].Resources must be a list")
    source = raw.get("EventSource", WORKSPACES_SOURCE)
    username = raw.get("Username", "admin")
    # Without an explicit id the id still must be deterministic: hash content.
    event_id = raw.get("EventId") or det_uuid(
        "explicit", account, region, json.dumps(raw, sort_keys=True, default=str)
    )
    return build_event(
        account,
        region,
        event_id=event_id,
        name=name,
        source=source,
        when=when,
        username=username,
        read_only=bool(read_only),
        access_key=raw.get("AccessKeyId", "AKIA" + det_hex(16, "key", account, username).upper()),
        resources=resources,
        request_parameters=raw.get("RequestParameters"),
        cloudtrail_event=raw.get("CloudTrailEvent"),
    )


def event_matches(event: dict, key: str, value: str) -> bool:
    if key == "ResourceType":
        return any(r.get("ResourceType") == value for r in event["Resources"])
    if key == "ResourceName":
        return any(r.get("ResourceName") == value for r in event["Resources"])
    return event.get(key) == value


def rate_limited(req: AwsRequest) -> bool:
    """Per account and region quotas, as AWS enforces them. `operation_rates`
    names an operation (`DescribeTags`) or a whole service by its signing
    name (`workspaces`: every WorkSpaces call draws on one rate), with either
    N (at most N accepted calls in any 1-second window) or {"rate": r,
    "burst": b} (a token bucket: b calls at once, refilled at r per second).
    LookupEvents also obeys `lookup_events_per_second`. A call must fit every
    quota that covers it; a refused call consumes none. Under EMU.lock."""
    rates = EMU.config["operation_rates"]
    quotas = [(name, rates[name]) for name in (req.signing_service, req.operation) if name and name in rates]
    if req.operation == "LookupEvents" and req.operation not in rates and EMU.config["lookup_events_per_second"]:
        quotas.append((req.operation, EMU.config["lookup_events_per_second"]))
    now = time.monotonic()
    admitted = []
    for name, quota in quotas:
        key = (req.account, req.region, name)
        if isinstance(quota, dict):
            tokens, last = EMU.buckets.get(key, (float(quota["burst"]), now))
            tokens = min(float(quota["burst"]), tokens + (now - last) * quota["rate"])
            if tokens < 1.0:
                return True
            admitted.append(lambda key=key, tokens=tokens: EMU.buckets.__setitem__(key, (tokens - 1.0, now)))
        elif quota:
            window = EMU.rate_windows[key]
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= quota:
                return True
            admitted.append(lambda window=window: window.append(now))
    for consume in admitted:
        consume()
    return False


def op_lookup_events(req: AwsRequest) -> dict[str, Any]:
    p = req.params
    attributes = p.get("LookupAttributes") or []
    if not isinstance(attributes, list) or len(attributes) > 1:
        raise ApiError(
            "InvalidLookupAttributesException",
            "You cannot specify more than one lookup attribute.",
        )
    max_results = p.get("MaxResults")
    if max_results is None:
        max_results = LOOKUP_EVENTS_MAX_RESULTS
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not (
        1 <= max_results <= LOOKUP_EVENTS_MAX_RESULTS
    ):
        raise ApiError("InvalidMaxResultsException", "MaxResults must be between 1 and 50.")
    try:
        start = parse_instant(p["StartTime"], "StartTime") if p.get("StartTime") is not None else None
        end = parse_instant(p["EndTime"], "EndTime") if p.get("EndTime") is not None else None
    except ValueError as exc:
        raise validation(str(exc))
    if start is not None and end is not None and start > end:
        raise ApiError("InvalidTimeRangeException", "Start time must be before end time.")
    category = p.get("EventCategory")
    if category not in (None, "insight"):
        raise ApiError("InvalidEventCategoryException", "EventCategory must be insight.")

    events = list(EMU.events[(req.account, req.region)].values())
    if category == "insight":
        events = []  # no Insights events are ever seeded
    for attribute in attributes:
        key = attribute.get("AttributeKey") if isinstance(attribute, dict) else None
        value = attribute.get("AttributeValue") if isinstance(attribute, dict) else None
        if key not in LOOKUP_KEYS or not isinstance(value, str) or not value:
            raise ApiError(
                "InvalidLookupAttributesException",
                f"Invalid lookup attribute: {key!r}",
            )
        events = [e for e in events if event_matches(e, key, value)]
    if start is not None:
        events = [e for e in events if e["EventTime"] >= start]
    if end is not None:
        events = [e for e in events if e["EventTime"] <= end]

    # Newest first; the id breaks ties so the order (and tokens) are total.
    def order(e: dict) -> tuple[float, str]:
        return (-e["EventTime"], e["EventId"])

    events.sort(key=order)
    token = p.get("NextToken")
    if token is not None:
        err = lambda m: ApiError("InvalidNextTokenException", m)  # noqa: E731
        pos = decode_token(token, "ct", err)
        try:
            after = (float(pos["t"]), str(pos["id"]))
        except (KeyError, TypeError, ValueError):
            raise err("Invalid NextToken")
        events = [e for e in events if order(e) > after]
    page = events[:max_results]
    out: dict[str, Any] = {"Events": page}
    if len(events) > max_results:
        last = order(page[-1])
        out["NextToken"] = encode_token({"k": "ct", "t": last[0], "id": last[1]})
    return out


# --------------------------------------------------------------------------
# Cost Explorer GetCostAndUsage
# --------------------------------------------------------------------------

DEFAULT_COST_SERVICES = {
    "Amazon WorkSpaces": [
        "USE1-AutoStop-Standard",
        "USE1-AutoStop-Performance",
        "USE1-AlwaysOn-Performance",
        "USE1-AlwaysOn-Standard",
    ],
    "Amazon CloudWatch": ["USE1-CW:Requests", "USE1-TimedStorage-ByteHrs"],
    "Amazon Elastic Compute Cloud - Compute": ["USE1-BoxUsage:t3.micro"],
    "AWS Directory Service": ["USE1-SmallDirectory"],
}
METRICS = {"UnblendedCost": "USD", "AmortizedCost": "USD", "UsageQuantity": "N/A"}
DIMENSIONS = {"SERVICE", "USAGE_TYPE", "LINKED_ACCOUNT"}


def cost_cell(seed: Any, service: str, usage_type: str, day: dt.date) -> dict[str, Decimal]:
    """Deterministic daily amounts with a full 10 decimal places, so
    clients that lose precision (f64) are caught by exact comparisons."""
    scale = det_int("scale", seed, service, usage_type) % 4 + 1
    units = det_int("cost", seed, service, usage_type, day.isoformat()) % (5 * 10**11) + 10**9
    unblended = Decimal(units * scale).scaleb(-10)
    # Amortized differs a little from unblended so a client reading the
    # wrong metric is noticed.
    amortized = (unblended * Decimal("0.97")).quantize(Q10, rounding=ROUND_HALF_EVEN)
    quantity = Decimal(det_int("qty", seed, service, usage_type, day.isoformat()) % 24_000_000).scaleb(-5)
    return {"UnblendedCost": unblended, "AmortizedCost": amortized, "UsageQuantity": quantity}


def control_seed_costs(spec: dict) -> dict:
    account = spec.get("account", DEFAULT_ACCOUNT_ID)
    if not isinstance(account, str) or not re.fullmatch(r"\d{12}", account):
        raise ControlError("account must be a 12-digit string")
    start, end = parse_day(spec.get("start")), parse_day(spec.get("end"))
    if not start or not end or start >= end:
        raise ControlError("start and end must be YYYY-MM-DD with start < end (end exclusive)")
    if (end - start).days > 3660:
        raise ControlError("at most ~10 years of cost data")
    services = spec.get("services", DEFAULT_COST_SERVICES)
    if (
        not isinstance(services, dict)
        or not services
        or not all(
            isinstance(types, list) and types and all(isinstance(t, str) for t in types)
            for types in services.values()
        )
    ):
        raise ControlError("services must map service names to non-empty lists of usage types")
    seed = spec.get("seed", 1)
    days: dict[dt.date, dict[tuple[str, str], dict]] = {}
    for day in days_between(start, end):
        days[day] = {
            (service, usage_type): cost_cell(seed, service, usage_type, day)
            for service, usage_types in services.items()
            for usage_type in usage_types
        }
    # Seeding replaces the account's data: tests get exactly what they asked.
    EMU.costs[account] = {"days": days, "end": end}
    return {"days": len(days), "rows": sum(len(v) for v in days.values())}


def control_bump_cost(spec: dict) -> dict:
    account = spec.get("account", DEFAULT_ACCOUNT_ID)
    data = EMU.costs.setdefault(account, {"days": {}, "end": None})
    day = parse_day(spec.get("date"))
    service, usage_type = spec.get("service"), spec.get("usage_type")
    if not day or not isinstance(service, str) or not isinstance(usage_type, str):
        raise ControlError("date (YYYY-MM-DD), service and usage_type are required")
    try:
        amount = Decimal(str(spec["amount"]))
        amortized = Decimal(str(spec.get("amortized", spec["amount"])))
        quantity = (
            Decimal(str(spec["usage_quantity"])) if "usage_quantity" in spec else None
        )
    except (KeyError, InvalidOperation):
        raise ControlError("amount (and optional amortized, usage_quantity) must be decimals")
    cells = data["days"].setdefault(day, {})
    cell = cells.setdefault(
        (service, usage_type),
        {"UnblendedCost": Decimal(0), "AmortizedCost": Decimal(0), "UsageQuantity": Decimal(0)},
    )
    cell["UnblendedCost"] = amount
    cell["AmortizedCost"] = amortized
    if quantity is not None:
        cell["UsageQuantity"] = quantity
    if data["end"] is None or day >= data["end"]:
        data["end"] = day + dt.timedelta(days=1)
    return {k: format_decimal(v) for k, v in cell.items()}


def control_dump_costs(query: dict[str, list[str]]) -> dict:
    account = (query.get("account") or [DEFAULT_ACCOUNT_ID])[0]
    data = EMU.costs.get(account, {"days": {}})
    return {
        "account": account,
        "days": {
            day.isoformat(): [
                {"service": service, "usage_type": usage_type}
                | {metric: format_decimal(v) for metric, v in cell.items()}
                for (service, usage_type), cell in sorted(cells.items())
            ]
            for day, cells in sorted(data["days"].items())
        },
    }


def compile_filter(expr: Any, account: str) -> Callable[[str, str], bool]:
    """Turn a CE Expression into a predicate over (service, usage_type)."""
    if not isinstance(expr, dict) or len(expr) != 1:
        raise validation("Filter expression must have exactly one of And, Or, Not, Dimensions")
    (kind, body), = expr.items()
    if kind in ("And", "Or"):
        if not isinstance(body, list) or len(body) < 2:
            raise validation(f"{kind} needs at least two expressions")
        parts = [compile_filter(e, account) for e in body]
        combine = all if kind == "And" else any
        return lambda s, u: combine(p(s, u) for p in parts)
    if kind == "Not":
        inner = compile_filter(body, account)
        return lambda s, u: not inner(s, u)
    if kind != "Dimensions":
        raise validation(f"Filter {kind} is not supported by the Hangar emulator")
    key, values = body.get("Key"), body.get("Values")
    if key not in DIMENSIONS:
        raise validation(f"Dimension {key} is not supported by the Hangar emulator")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise validation("Dimensions.Values must be a list of strings")
    options = set(body.get("MatchOptions") or ["EQUALS"])
    folded = "CASE_INSENSITIVE" in options
    options -= {"CASE_SENSITIVE", "CASE_INSENSITIVE"}
    mode = options.pop() if len(options) == 1 else "EQUALS" if not options else None
    tests = {
        "EQUALS": lambda a, b: a == b,
        "STARTS_WITH": lambda a, b: a.startswith(b),
        "ENDS_WITH": lambda a, b: a.endswith(b),
        "CONTAINS": lambda a, b: b in a,
    }
    if mode not in tests:
        raise validation(f"MatchOptions {sorted(body.get('MatchOptions'))} not supported")
    test = tests[mode]
    wanted = [v.lower() for v in values] if folded else values

    def predicate(service: str, usage_type: str) -> bool:
        actual = {"SERVICE": service, "USAGE_TYPE": usage_type, "LINKED_ACCOUNT": account}[key]
        if folded:
            actual = actual.lower()
        return any(test(actual, v) for v in wanted)

    return predicate


def op_get_cost_and_usage(req: AwsRequest) -> dict[str, Any]:
    p = req.params
    period = p.get("TimePeriod") or {}
    start, end = parse_day(period.get("Start")), parse_day(period.get("End"))
    if not start or not end:
        raise validation("TimePeriod.Start and TimePeriod.End must be dates (YYYY-MM-DD)")
    if start >= end:
        raise validation("Start date (and hour) should be before end date (and hour)")
    if p.get("Granularity") != "DAILY":
        raise validation("The Hangar emulator only supports Granularity DAILY")
    metrics = p.get("Metrics")
    if not isinstance(metrics, list) or not metrics:
        raise validation("Metrics is required")
    for metric in metrics:
        if metric not in METRICS:
            raise validation(f"Invalid metric: {metric}")
    group_by = p.get("GroupBy") or []
    if not isinstance(group_by, list) or len(group_by) > 2:
        raise validation("You can group by at most two dimensions")
    keys = []
    for group in group_by:
        if not isinstance(group, dict) or group.get("Type") != "DIMENSION":
            raise validation("The Hangar emulator only supports GroupBy Type DIMENSION")
        if group.get("Key") not in DIMENSIONS:
            raise validation(f"Invalid group by key: {group.get('Key')}")
        if group["Key"] in keys:
            raise validation("Duplicate group by key")
        keys.append(group["Key"])
    account = req.account
    predicate = (
        compile_filter(p["Filter"], account) if p.get("Filter") is not None else lambda s, u: True
    )

    page_start = start
    if p.get("NextPageToken") is not None:
        err = lambda m: ApiError("InvalidNextTokenException", m)  # noqa: E731
        pos = decode_token(p["NextPageToken"], "ce", err)
        page_start = parse_day(pos.get("next"))
        if not page_start or not start < page_start < end:
            raise err("Invalid NextPageToken")
    page_end = min(end, page_start + dt.timedelta(days=int(EMU.config["cost_page_days"])))

    data = EMU.costs.get(account, {"days": {}, "end": None})
    estimated_from = (
        data["end"] - dt.timedelta(days=int(EMU.config["cost_estimated_days"]))
        if data["end"]
        else None
    )

    def metric_json(sums: dict[str, Decimal]) -> dict[str, Any]:
        return {
            m: {"Amount": format_decimal(sums.get(m, Decimal(0))), "Unit": METRICS[m]}
            for m in metrics
        }

    results = []
    for day in days_between(page_start, page_end):
        cells = [
            (service, usage_type, cell)
            for (service, usage_type), cell in data["days"].get(day, {}).items()
            if predicate(service, usage_type)
        ]
        entry: dict[str, Any] = {
            "TimePeriod": {
                "Start": day.isoformat(),
                "End": (day + dt.timedelta(days=1)).isoformat(),
            },
            "Estimated": estimated_from is not None and day >= estimated_from,
        }
        if keys:
            groups: dict[tuple[str, ...], dict[str, Decimal]] = defaultdict(
                lambda: defaultdict(Decimal)
            )
            for service, usage_type, cell in cells:
                values = {"SERVICE": service, "USAGE_TYPE": usage_type, "LINKED_ACCOUNT": account}
                group = groups[tuple(values[k] for k in keys)]
                for metric in metrics:
                    group[metric] += cell[metric]
            entry["Total"] = {}  # AWS leaves Total empty when grouping
            entry["Groups"] = [
                {"Keys": list(group_keys), "Metrics": metric_json(sums)}
                for group_keys, sums in sorted(groups.items())
            ]
        else:
            sums: dict[str, Decimal] = defaultdict(Decimal)
            for _, _, cell in cells:
                for metric in metrics:
                    sums[metric] += cell[metric]
            entry["Total"] = metric_json(sums)
            entry["Groups"] = []
        results.append(entry)

    out: dict[str, Any] = {
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": k} for k in keys],
        "ResultsByTime": results,
        "DimensionValueAttributes": [],
    }
    if page_end < end:
        out["NextPageToken"] = encode_token({"k": "ce", "next": page_end.isoformat()})
    return out


# --------------------------------------------------------------------------
# CloudWatch GetMetricData (AWS/WorkSpaces UserConnected)
# --------------------------------------------------------------------------
# The SDKs speak Smithy RPC v2 CBOR to CloudWatch, which moto does not parse;
# this answers GetMetricData from the points moto's CloudWatch backend keeps
# (put there by PutMetricData, or by /_hangar/seed/usage through the same
# backend call), with AWS's rules: at most 500 queries, periods multiple of
# 60 s aligned to the epoch, one datapoint per period with data, results
# paged by total datapoints (100,800 per call) with NextToken.

CLOUDWATCH_SERVICE = "GraniteServiceVersion20100801"
CLOUDWATCH_ERROR_NS = "com.amazonaws.cloudwatch#"
METRIC_QUERIES_MAX = 500
WORKSPACES_NAMESPACE = "AWS/WorkSpaces"
USER_CONNECTED = "UserConnected"


def cw_backend(account: str, region: str):
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[account][region]


# (account, region) -> (points indexed, {(namespace, name, dims): (times, values)})
METRIC_INDEX: dict[tuple[str, str], tuple[tuple[int, int], dict]] = {}


def metric_index(account: str, region: str) -> dict:
    """moto's points by series, sorted by time; rebuilt only when points
    were added (moto keeps them in one list, scanned whole per query)."""
    points = cw_backend(account, region).metric_data
    cached = METRIC_INDEX.get((account, region))
    if cached is not None and cached[0] == (id(points), len(points)):
        return cached[1]
    series: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for datum in points:
        value = getattr(datum, "value", None)
        if value is None:
            continue
        dims = tuple(sorted((d.name, d.value) for d in datum.dimensions))
        series[(datum.namespace, datum.name, dims)].append((datum.timestamp.timestamp(), float(value)))
    index = {}
    for key, pairs in series.items():
        pairs.sort()
        index[key] = ([t for t, _ in pairs], [v for _, v in pairs])
    METRIC_INDEX[(account, region)] = ((id(points), len(points)), index)
    return index


def epoch_of(value: Any, what: str) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ApiError("ValidationError", f"{what} must be a timestamp", 400)


STATS = {
    "Maximum": max,
    "Minimum": min,
    "Sum": sum,
    "Average": lambda v: sum(v) / len(v),
    "SampleCount": lambda v: float(len(v)),
}


def op_get_metric_data(req: AwsRequest, params: dict[str, Any]) -> dict[str, Any]:
    queries = params.get("MetricDataQueries") or []
    if not isinstance(queries, list) or not queries:
        raise ApiError("ValidationError", "MetricDataQueries is required", 400)
    if len(queries) > METRIC_QUERIES_MAX:
        raise ApiError(
            "ValidationError",
            f"The collection MetricDataQueries must not have a size greater than {METRIC_QUERIES_MAX}.",
            400,
        )
    start = epoch_of(params.get("StartTime"), "StartTime")
    end = epoch_of(params.get("EndTime"), "EndTime")
    if start >= end:
        raise ApiError("ValidationError", "The parameter StartTime must be less than the parameter EndTime.", 400)
    descending = (params.get("ScanBy") or "TimestampDescending") == "TimestampDescending"
    page_points = min(int(params.get("MaxDatapoints") or 100_800), EMU.config["metric_page_points"])

    index = metric_index(req.account, req.region)

    # Every query's full answer, then the page asked for.
    answers: list[tuple[str, str, list[tuple[float, float]]]] = []
    seen_ids: set[str] = set()
    for n, q in enumerate(queries, 1):
        qid = q.get("Id")
        if not isinstance(qid, str) or not re.fullmatch(r"[a-z][A-Za-z0-9_]{0,254}", qid):
            raise ApiError("ValidationError", f"MetricDataQueries.member.{n}.Id must start with a lower-case letter", 400)
        if qid in seen_ids:
            raise ApiError("ValidationError", f"The values for parameter id in MetricDataQueries are not unique: {qid}", 400)
        seen_ids.add(qid)
        stat = q.get("MetricStat")
        if not isinstance(stat, dict):
            raise ApiError("ValidationError", f"The parameter MetricDataQueries.member.{n}.MetricStat is required.", 400)
        period = stat.get("Period")
        if not isinstance(period, int) or period <= 0 or (period >= 60 and period % 60):
            raise ApiError("ValidationError", f"MetricDataQueries.member.{n}.MetricStat.Period must be a multiple of 60", 400)
        fn = STATS.get(stat.get("Stat"))
        if fn is None:
            raise ApiError("ValidationError", f"MetricDataQueries.member.{n}.MetricStat.Stat {stat.get('Stat')!r} is not supported here", 400)
        metric = stat.get("Metric") or {}
        dims = tuple(sorted((d.get("Name"), d.get("Value")) for d in metric.get("Dimensions") or []))
        times, values = index.get((metric.get("Namespace"), metric.get("MetricName"), dims), ([], []))
        first = start - start % period  # aligned down, as CloudWatch does
        buckets: dict[float, list[float]] = defaultdict(list)
        for i in range(bisect.bisect_left(times, first), bisect.bisect_left(times, end)):
            t = times[i]
            buckets[t - (t - first) % period].append(values[i])
        series = sorted(((t, fn(vs)) for t, vs in buckets.items()), reverse=descending)
        if q.get("ReturnData", True):
            answers.append((qid, q.get("Label") or metric.get("MetricName") or qid, series))

    offset = 0
    token = params.get("NextToken")
    if token:
        offset = decode_token(token, "metric-data", lambda m: ApiError("InvalidNextToken", m, 400))["offset"]
    # One sequence of datapoints, query after query; a page is a slice of it.
    total = sum(len(series) for _, _, series in answers)
    page_end = offset + page_points
    results, position = [], 0
    for qid, label, series in answers:
        first, last = position, position + len(series)
        position = last
        lo, hi = max(first, offset), min(last, page_end)
        if series and lo >= hi:
            continue
        # An empty answer goes on the page its position falls in (the last
        # page for the ones at the very end).
        if not series and not (offset <= first < page_end or (first == total and page_end >= total)):
            continue
        chunk = series[lo - first : hi - first] if series else []
        results.append({
            "Id": qid,
            "Label": label,
            # CBOR carries timestamps as tagged epoch times, JSON as numbers.
            "Timestamps": [
                dt.datetime.fromtimestamp(t, dt.timezone.utc) if req.is_cbor else t for t, _ in chunk
            ],
            "Values": [v for _, v in chunk],
            "StatusCode": "Complete" if hi >= last else "PartialData",
        })
    out: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
    if page_end < total:
        out["NextToken"] = encode_token({"k": "metric-data", "offset": page_end})
    return out


def connected_periods(start: float, end: float) -> list[float]:
    """The 5-minute periods a connection from start to end touches."""
    return list(range(int(start - start % 300), int(end), 300))


def put_user_connected(account: str, region: str, workspace_id: str, points: list[tuple[float, float]]) -> None:
    backend = cw_backend(account, region)
    for i in range(0, len(points), 1000):
        backend.put_metric_data(
            WORKSPACES_NAMESPACE,
            [
                {
                    "MetricName": USER_CONNECTED,
                    "Dimensions": [{"Name": "WorkspaceId", "Value": workspace_id}],
                    "Value": value,
                    "Timestamp": dt.datetime.fromtimestamp(t, dt.timezone.utc),
                    "Unit": "Count",
                }
                for t, value in points[i : i + 1000]
            ],
        )


def control_seed_usage(spec: dict) -> dict:
    """UserConnected points for WorkSpaces, through moto's PutMetricData.

    Either explicit `sessions` [{workspace_id, start, end}] (1 for each
    5-minute period a user is connected), or generated usage for every seeded
    workspace of the account and region over `days` days ending at `end`
    (default now): office hours on weekdays for most, a few heavy users,
    some never connected; each session is followed by `idle_periods` zeros
    while the workspace waits to auto-stop.
    """
    account, region = get_account_region(spec)
    idle = get_int(spec, "idle_periods", 0, 0, 48)
    points_put = 0
    connected = 0
    sessions = spec.get("sessions")
    if sessions is not None:
        if not isinstance(sessions, list):
            raise ControlError("sessions must be a list of {workspace_id, start, end}")
        for s in sessions:
            wid = s.get("workspace_id") if isinstance(s, dict) else None
            if not isinstance(wid, str):
                raise ControlError("each session needs a workspace_id")
            start, end = parse_instant(s.get("start"), "start"), parse_instant(s.get("end"), "end")
            if start >= end:
                raise ControlError("a session's start must be before its end")
            points = [(t, 1.0) for t in connected_periods(start, end)]
            last = points[-1][0] if points else start
            points += [(last + 300 * (k + 1), 0.0) for k in range(idle)]
            put_user_connected(account, region, wid, points)
            points_put += len(points)
            connected += sum(1 for _, v in points if v >= 1)
        return {"points": points_put, "connected": connected}

    days = get_int(spec, "days", 7, 1, 62)
    end = parse_instant(spec["end"], "end") if "end" in spec else time.time()
    end -= end % 300
    seed = spec.get("seed", 1)
    ids = sorted(ws.workspace_id for ws in ws_backend(account, region).workspaces.values())
    for wid in ids:
        profile = det_int(seed, wid, "profile") % 10  # 0: never, 1-2: heavy, 3-9: office
        if profile == 0:
            continue
        points: list[tuple[float, float]] = []
        day0 = end - days * 86400
        day0 -= day0 % 86400
        for d in range(days + 1):
            midnight = day0 + d * 86400
            weekday = dt.datetime.fromtimestamp(midnight, dt.timezone.utc).weekday()
            if profile >= 3 and weekday >= 5:
                continue
            if profile >= 3 and det_int(seed, wid, d, "absent") % 5 == 0:
                continue  # a day off
            hours = 10 if profile <= 2 else 1 + det_int(seed, wid, d, "hours") % 6
            begin = midnight + (8 + det_int(seed, wid, d, "start") % 3) * 3600
            stop = min(begin + hours * 3600, end)
            if begin >= end:
                continue
            periods = connected_periods(begin, stop)
            points += [(t, 1.0) for t in periods]
            if periods:
                points += [(periods[-1] + 300 * (k + 1), 0.0) for k in range(idle)
                           if periods[-1] + 300 * (k + 1) < end]
        put_user_connected(account, region, wid, points)
        points_put += len(points)
        connected += sum(1 for _, v in points if v >= 1)
    return {"workspaces": len(ids), "points": points_put, "connected": connected}


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------

OVERRIDES: dict[tuple[str, str], Callable[[AwsRequest], dict[str, Any]]] = {
    ("WorkspacesService", "DescribeWorkspaces"): op_describe_workspaces,
    ("WorkspacesService", "DescribeWorkspacesConnectionStatus"): op_describe_workspaces_connection_status,
    ("WorkspacesService", "DescribeWorkspaceBundles"): op_describe_workspace_bundles,
    ("WorkspacesService", "DescribeWorkspaceDirectories"): op_describe_workspace_directories,
    ("WorkspacesService", "DescribeTags"): op_describe_tags,
    ("WorkspacesService", "ModifyWorkspaceProperties"): op_modify_workspace_properties,
    ("CloudTrail_20131101", "LookupEvents"): op_lookup_events,
    ("AWSInsightsIndexService", "GetCostAndUsage"): op_get_cost_and_usage,
    (CLOUDWATCH_SERVICE, "GetMetricData"): lambda req: op_get_metric_data(req, req.params),
}

CBOR_OVERRIDES: dict[tuple[str, str], Callable[[AwsRequest, dict], dict[str, Any]]] = {
    (CLOUDWATCH_SERVICE, "GetMetricData"): op_get_metric_data,
}


def control_faults_add(spec: dict) -> dict:
    fault = Fault(EMU.next_fault_id, spec)
    EMU.next_fault_id += 1
    EMU.faults.append(fault)
    return {"id": fault.id}


def control_faults_clear() -> dict:
    EMU.faults.clear()
    return {"ok": True}


def control_config(spec: dict) -> dict:
    for key, value in spec.items():
        if key not in DEFAULT_CONFIG:
            raise ControlError(f"unknown config key {key!r}; known: {sorted(DEFAULT_CONFIG)}")
        if key == "operation_rates":
            def number(v: Any) -> bool:
                return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            if not isinstance(value, dict) or not all(
                isinstance(k, str)
                and (
                    (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
                    or (isinstance(v, dict) and set(v) == {"rate", "burst"} and number(v["rate"]) and number(v["burst"]))
                )
                for k, v in value.items()
            ):
                raise ControlError(
                    'operation_rates must map operation or service names to N >= 0 or {"rate": r, "burst": b}'
                )
            continue
        minimum = 1 if key in ("cost_page_days", "metric_page_points") else 0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise ControlError(f"{key} must be a number >= {minimum}")
        if key != "connection_base_time" and not isinstance(value, int):
            raise ControlError(f"{key} must be an integer")
    EMU.config.update(spec)
    return dict(EMU.config)


def control_stats() -> dict:
    return {
        "calls": dict(EMU.calls),
        "throttled": dict(EMU.throttled),
        "faults_fired": dict(EMU.faults_fired),
    }


def control_stats_reset() -> dict:
    EMU.calls.clear()
    EMU.throttled.clear()
    EMU.faults_fired.clear()
    return {"ok": True}


def control_seed_organization(spec: dict) -> dict:
    """An AWS Organization run from the default account, with the given
    member accounts (ids chosen by the test, so it can seed their data)."""
    members = spec.get("accounts")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        raise ControlError("accounts must be a list of {id, name, state?}")
    for m in members:
        if not isinstance(m.get("id"), str) or not re.fullmatch(r"\d{12}", m["id"]):
            raise ControlError("each account needs an id of 12 digits")
        if not isinstance(m.get("name"), str) or not m["name"]:
            raise ControlError("each account needs a name")
        if m.get("state", "ACTIVE") not in ("ACTIVE", "SUSPENDED", "PENDING_CLOSURE", "CLOSED"):
            raise ControlError("state must be ACTIVE, SUSPENDED, PENDING_CLOSURE or CLOSED")
    backend = organizations_backends[DEFAULT_ACCOUNT_ID]["aws"]
    if backend.org is None:
        backend.create_organization(region="us-east-1", FeatureSet="ALL")
    master = backend.org.master_account_id
    backend.accounts = [a for a in backend.accounts if a.id == master]
    for m in members:
        backend.create_account(AccountName=m["name"], Email=f"{m['id']}@example.com")
        account = backend.accounts[-1]
        account.id = m["id"]
        state = m.get("state", "ACTIVE")
        account.state = state
        account.status = "ACTIVE" if state == "ACTIVE" else "SUSPENDED"
    return {"accounts": len(backend.accounts)}


def control_reset() -> dict:
    moto_api_backend.reset()  # every moto backend, as POST /moto-api/reset
    EMU.reset_own_state()
    METRIC_INDEX.clear()
    log("reset")
    return {"ok": True}


# (method, path) -> handler(payload or query) ; GET handlers receive the query.
CONTROL_ROUTES: dict[tuple[str, str], Callable[[Any], dict]] = {
    ("GET", "/_hangar/health"): lambda _: {"ok": True},
    ("POST", "/_hangar/seed/workspaces"): control_seed_workspaces,
    ("POST", "/_hangar/workspaces/terminate"): control_terminate,
    ("POST", "/_hangar/workspaces/state"): control_set_state,
    ("POST", "/_hangar/workspaces/connection"): control_set_connection,
    ("POST", "/_hangar/workspaces/standby"): control_set_standby,
    ("POST", "/_hangar/seed/cloudtrail"): control_seed_cloudtrail,
    ("POST", "/_hangar/seed/costs"): control_seed_costs,
    ("POST", "/_hangar/seed/organization"): control_seed_organization,
    ("POST", "/_hangar/costs/bump"): control_bump_cost,
    ("POST", "/_hangar/seed/usage"): control_seed_usage,
    ("GET", "/_hangar/costs"): control_dump_costs,
    ("POST", "/_hangar/faults"): control_faults_add,
    ("GET", "/_hangar/faults"): lambda _: {"faults": [f.to_json() for f in EMU.faults]},
    ("DELETE", "/_hangar/faults"): lambda _: control_faults_clear(),
    ("GET", "/_hangar/stats"): lambda _: control_stats(),
    ("POST", "/_hangar/stats/reset"): lambda _: control_stats_reset(),
    ("POST", "/_hangar/config"): control_config,
    ("GET", "/_hangar/config"): lambda _: dict(EMU.config),
    ("POST", "/_hangar/reset"): lambda _: control_reset(),
}


def read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            return stream.read(int(length))
        except ValueError:
            return b""
    if environ.get("wsgi.input_terminated"):  # chunked upload
        return stream.read()
    return b""


class HangarMiddleware:
    def __init__(self, moto_app: DomainDispatcherApplication):
        self.moto_app = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        body = read_body(environ)
        # Whoever reads next (moto) must find the body again.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_hangar/"):
            status, headers, out = self.control(environ, path, body)
        else:
            status, headers, out = self.aws(environ, body)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(out))))
        start_response(f"{status} {HTTP_REASONS.get(status, 'Status')}", headers)
        return [out]

    # ---- control API ---------------------------------------------------

    def control(self, environ: dict, path: str, body: bytes) -> tuple[int, list, bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = path.rstrip("/")
        if method == "DELETE" and path.startswith("/_hangar/faults/"):
            fault_id = path.rsplit("/", 1)[1]
            with EMU.lock:
                before = len(EMU.faults)
                EMU.faults = [f for f in EMU.faults if str(f.id) != fault_id]
                found = len(EMU.faults) < before
            return self.json(200 if found else 404, {"ok": found})
        handler = CONTROL_ROUTES.get((method, path))
        if handler is None:
            known = [p for m, p in CONTROL_ROUTES if p == path]
            if known:
                return self.json(405, {"error": f"method {method} not allowed on {path}"})
            return self.json(404, {"error": f"no control endpoint {method} {path}"})
        try:
            if method in ("GET", "DELETE"):
                arg: Any = parse_qs(environ.get("QUERY_STRING", ""))
            else:
                try:
                    arg = json.loads(body) if body.strip() else {}
                except ValueError:
                    raise ControlError("body must be JSON")
                if not isinstance(arg, dict):
                    raise ControlError("body must be a JSON object")
            with EMU.lock:
                result = handler(arg)
            return self.json(200, result)
        except ControlError as exc:
            return self.json(400, {"error": str(exc)})

    @staticmethod
    def json(status: int, obj: Any) -> tuple[int, list, bytes]:
        return status, [("Content-Type", "application/json")], json.dumps(obj).encode()

    # ---- AWS calls -----------------------------------------------------

    def aws(self, environ: dict, body: bytes) -> tuple[int, list, bytes]:
        req = AwsRequest(environ, body)
        with EMU.lock:
            EMU.calls[req.operation] += 1
            fault = None
            for candidate in EMU.faults:
                if candidate.exhausted() or not candidate.applies_to(req):
                    continue
                candidate.seen += 1
                if candidate.seen <= candidate.after:
                    continue  # let the first `after` matching calls through
                candidate.fired += 1
                EMU.faults_fired[req.operation] += 1
                fault = candidate
                break
            throttled = fault is None and rate_limited(req)
            if throttled:
                EMU.throttled[req.operation] += 1
        if fault is not None:
            if log_verbose:
                log(f"fault #{fault.id} fires on {req.operation} ({req.account}/{req.region})")
            if fault.delay_ms:
                time.sleep(fault.delay_ms / 1000)  # outside the lock
            if fault.status is not None:
                return error_response(req, ApiError(fault.code, fault.message, fault.status))
        if throttled:
            return error_response(req, ApiError("ThrottlingException", "Rate exceeded"))

        if req.is_cbor:
            return self.cbor(req)
        handler = OVERRIDES.get((req.service_prefix, req.operation)) if req.target else None
        if handler is None:
            return self.passthrough(environ)
        try:
            with EMU.lock:
                result = handler(req)
        except ApiError as err:
            if log_verbose:
                log(f"{req.operation} -> {err.code}: {err.message}")
            return error_response(req, err)
        headers = [
            ("Content-Type", JSON_CONTENT_TYPE),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ]
        return 200, headers, json.dumps(result, separators=(",", ":")).encode()

    def cbor(self, req: AwsRequest) -> tuple[int, list, bytes]:
        """Smithy RPC v2 CBOR calls, which moto cannot parse: answered here."""
        import cbor2

        handler = CBOR_OVERRIDES.get((req.service_prefix, req.operation))
        try:
            if handler is None:
                raise ApiError("UnknownOperationException", f"{req.operation} is not emulated over CBOR", 400)
            try:
                params = cbor2.loads(req.body) if req.body else {}
            except Exception:
                raise ApiError("SerializationException", "Malformed CBOR body", 400)
            if not isinstance(params, dict):
                raise ApiError("SerializationException", "Body must be a map", 400)
            with EMU.lock:
                result = handler(req, params)
        except ApiError as err:
            if log_verbose:
                log(f"{req.operation} -> {err.code}: {err.message}")
            return error_response(req, err)
        headers = [
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ]
        return 200, headers, cbor2.dumps(result, datetime_as_timestamp=True)

    def passthrough(self, environ: dict) -> tuple[int, list, bytes]:
        captured: dict[str, Any] = {}
        chunks: list[bytes] = []

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers
            return chunks.append

        with EMU.lock:
            iterable = self.moto_app(environ, capture)
            try:
                chunks.extend(iterable)
            finally:
                if hasattr(iterable, "close"):
                    iterable.close()
        return captured["status"], captured["headers"], b"".join(chunks)


HTTP_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class QuietHandler(WSGIRequestHandler):
    """werkzeug logs every request; at 40 pages per listing that drowns the
    test output, so only log with --verbose."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        if log_verbose:
            super().log_request(*args, **kwargs)


def main(argv: list[str] | None = None) -> None:
    global log_verbose
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    log_verbose = args.verbose

    moto_app = DomainDispatcherApplication(create_backend_app)
    # Build the per-service Flask apps now so the first real call is not slow.
    for service in ("workspaces", "sts", "ce", "cloudtrail", "ds", "iam"):
        moto_app.app_instances[service] = moto_app.create_app(service)

    server = make_server(
        "127.0.0.1",
        args.port,
        HangarMiddleware(moto_app),
        threaded=True,
        request_handler=QuietHandler,
    )

    def on_term(signum: int, frame: Any) -> None:
        # Raised in the main thread, interrupting serve_forever below.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    port = server.server_port
    log(f"listening on http://127.0.0.1:{port}")
    print(f"HANGAR_MOTO_PORT={port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        log("stopped")


if __name__ == "__main__":
    main()
