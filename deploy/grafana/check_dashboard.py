#!/usr/bin/env python3
"""Checks a Grafana dashboard of Hangar's offline (standard library only).

    python3 deploy/grafana/check_dashboard.py deploy/grafana/hangar.json [--emit-rules FILE]

Checks that the JSON parses; that every panel (rows included, and the panels
of collapsed rows) has a unique id and a title; that every panel other than
a row has a description and at least one target with a non-empty expr;
that every target uses the `datasource` variable; that the `datasource` and
`queue` variables are there; and that every Hangar metric an expr names is
one the code registers (read from the crates' metrics modules next to this
file, when they are there), so a renamed metric cannot leave a panel empty.

Grafana's variables are then replaced as Prometheus would never see them
($__rate_interval and $__interval by 1m, $__range by 1h, $queue by .*), and
with --emit-rules every expr is written as a recording rule to FILE (JSON,
which is YAML), so that `promtool check rules FILE` parses each one as
PromQL. scripts/check-monitoring does both.

With --names-in, the hangar_* metric names in other files (the rules, their
tests, the runbook) are checked against the code the same way.

Prints what it checked and the number of exprs; exits 1 on any problem.
"""

import argparse
import json
import pathlib
import re
import sys

SUBSTITUTIONS = [
    ("$__rate_interval", "1m"),
    ("$__interval", "1m"),
    ("$__range", "1h"),
    ("$queue", ".*"),
]

# The crates whose metrics modules register Hangar's metrics, and the
# prefix each registry adds.
METRIC_SOURCES = [
    ("api/src", "hangar_"),
    ("worker/src", "hangar_"),
    ("sync/src", "hangar_"),
    ("inference/src", "hangar_"),
    ("scheduler/src", "hangar_scheduler_"),
    # telemetry::register_export_metrics, called by every process's registry.
    ("shared/src/telemetry.rs", "hangar_"),
    ("shared/src/telemetry.rs", "hangar_scheduler_"),
]
# What the exposition appends to counter and histogram names.
SUFFIXES = ("_total", "_bucket", "_sum", "_count")
REGISTERED = re.compile(r'(?:\bregister|encode_descriptor)\(\s*"([a-z0-9_]+)"')
METRIC_IN_EXPR = re.compile(r"(?<![\w:])(hangar_[a-z0-9_]+)(?![\w:*])")


def all_panels(panels):
    """Every panel, with those nested in (collapsed) rows."""
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def registered_metrics(repo):
    """Metric names the code registers, or None without the sources."""
    names = set()
    found_any = False
    for folder, prefix in METRIC_SOURCES:
        root = repo / folder
        for path in [root] if root.is_file() else sorted(root.rglob("*.rs")):
            found_any = True
            for name in REGISTERED.findall(path.read_text(encoding="utf-8")):
                names.add(prefix + name)
    return names if found_any else None


def known(metric, names):
    if metric in names:
        return True
    return any(metric.endswith(s) and metric[: -len(s)] in names for s in SUFFIXES)


def check(dashboard, repo):
    """Returns (problems, exprs) where exprs are (panel id, refId, expr)."""
    problems = []
    exprs = []

    if dashboard.get("uid") != "hangar":
        problems.append(f'uid is {dashboard.get("uid")!r}, not "hangar"')
    if dashboard.get("schemaVersion") != 39:
        problems.append(f'schemaVersion is {dashboard.get("schemaVersion")!r}, not 39')
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no `datasource` variable of type datasource for prometheus")
    queue = variables.get("queue")
    if not queue:
        problems.append("no `queue` variable")
    else:
        query = queue.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if query != "label_values(hangar_queue_depth, queue)":
            problems.append(f"the queue variable's query is {query!r}")
        if not (queue.get("multi") and queue.get("includeAll")):
            problems.append("the queue variable is not multi-value with All")

    ids = {}
    panels = list(all_panels(dashboard.get("panels", [])))
    if not panels:
        problems.append("no panels")
    for p in panels:
        pid = p.get("id")
        name = f'panel {pid} ({p.get("title")!r})'
        if not isinstance(pid, int):
            problems.append(f"{name}: id is not an integer")
        elif pid in ids:
            problems.append(f"{name}: id {pid} is also {ids[pid]!r}'s")
        else:
            ids[pid] = p.get("title")
        if not str(p.get("title") or "").strip():
            problems.append(f"{name}: no title")
        if p.get("type") == "row":
            continue
        if not str(p.get("description") or "").strip():
            problems.append(f"{name}: no description")
        targets = [t for t in p.get("targets", []) if str(t.get("expr") or "").strip()]
        if not targets:
            problems.append(f"{name}: no target with an expr")
        for t in p.get("targets", []):
            expr = str(t.get("expr") or "").strip()
            if not expr:
                problems.append(f'{name}: target {t.get("refId")} has an empty expr')
                continue
            uid = (t.get("datasource") or p.get("datasource") or {}).get("uid")
            if uid != "${datasource}":
                problems.append(f'{name}: target {t.get("refId")} does not use ${{datasource}}')
            if "$queue" in expr and '=~"$queue"' not in expr:
                problems.append(f'{name}: target {t.get("refId")} uses $queue other than as queue=~"$queue"')
            exprs.append((pid, t.get("refId"), expr))

    names = registered_metrics(repo)
    if names is None:
        print("  (metric names not checked: the crates' sources are not next to this file)")
    else:
        for pid, ref, expr in exprs:
            for metric in METRIC_IN_EXPR.findall(expr):
                if not known(metric, names):
                    problems.append(f"panel {pid} target {ref}: {metric} is not a metric the code registers")
    return problems, exprs


def substitute(expr):
    for var, value in SUBSTITUTIONS:
        expr = expr.replace(var, value)
    return expr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", type=pathlib.Path)
    parser.add_argument("--emit-rules", type=pathlib.Path,
                        help="write the exprs, variables replaced, as a rule file for promtool check rules")
    parser.add_argument("--names-in", type=pathlib.Path, nargs="*", default=[],
                        help="other files (rules, their tests, the runbook) whose hangar_* metric names must be registered too")
    args = parser.parse_args()
    repo = pathlib.Path(__file__).resolve().parents[2]

    try:
        dashboard = json.loads(args.dashboard.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        print(f"{args.dashboard}: {e}")
        return 1
    print(f"{args.dashboard}: JSON parses")
    problems, exprs = check(dashboard, repo)
    names = registered_metrics(repo)
    if names is not None:
        for path in args.names_in:
            text = path.read_text(encoding="utf-8")
            unknown = sorted({m for m in METRIC_IN_EXPR.findall(text) if not known(m, names)})
            for metric in unknown:
                problems.append(f"{path}: {metric} is not a metric the code registers")
            if not unknown:
                print(f"  {path}: every hangar_* metric it names is registered")

    rules = []
    for pid, ref, expr in exprs:
        expr = substitute(expr)
        left = re.findall(r"\$(?:__\w+|\{?(?:queue|datasource)\b)", expr)
        if left:
            problems.append(f"panel {pid} target {ref}: variables left after substitution: {left}")
        rules.append({"record": f"hangar_dashboard:panel_{pid}_{ref}", "expr": expr})
    if args.emit_rules:
        args.emit_rules.write_text(
            json.dumps({"groups": [{"name": "hangar-dashboard-exprs", "rules": rules}]}, indent=2),
            encoding="utf-8",
        )
        print(f"  wrote the {len(rules)} exprs to {args.emit_rules} for promtool")

    panel_count = sum(1 for p in all_panels(dashboard.get("panels", [])) if p.get("type") != "row")
    rows = sum(1 for p in all_panels(dashboard.get("panels", [])) if p.get("type") == "row")
    print(f"  {rows} rows, {panel_count} panels, {len(exprs)} exprs")
    if problems:
        for p in problems:
            print(f"  PROBLEM: {p}")
        return 1
    print("  every panel has a unique id, a title, a description and an expr; every metric is registered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
