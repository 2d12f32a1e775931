#!/usr/bin/env python3
"""Checks that the alerts, their unit tests and their runbook agree
(standard library only; promtool checks the rest).

    python3 deploy/prometheus/check_alerts.py RULES TESTS RUNBOOK

For every alert in RULES: a severity label, summary, description and
runbook_url annotations, the runbook_url's anchor being the alert's own
`### <AlertName>` heading in RUNBOOK; in TESTS, at least one case where it
fires (exp_alerts with entries) and one where it does not
(`exp_alerts: []`). Every `### ` heading of RUNBOOK's alert section must be
an alert. Exits 1 on any problem.
"""

import re
import sys


def alert_blocks(text):
    """(name, block text) of every `- alert:` rule."""
    parts = re.split(r"^\s*- alert:\s*", text, flags=re.M)
    for part in parts[1:]:
        name = part.split("\n", 1)[0].strip()
        # The block ends where the next rule (or comment before it) starts.
        block = re.split(r"^\s*(?:- (?:alert|record):|#)", part, flags=re.M)[0]
        yield name, block


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    rules, tests, runbook = (open(p, encoding="utf-8").read() for p in sys.argv[1:])
    problems = []

    section = runbook.split("## Alerts and their runbook", 1)
    if len(section) != 2:
        problems.append(f"{sys.argv[3]}: no '## Alerts and their runbook' section")
        section = ["", ""]
    body = re.split(r"^## ", section[1], flags=re.M)[0]
    headings = re.findall(r"^### (\S+)\s*$", body, flags=re.M)

    alerts = []
    for name, block in alert_blocks(rules):
        alerts.append(name)
        if not re.search(r"^\s*severity:\s*(critical|warning|info)\s*$", block, flags=re.M):
            problems.append(f"{name}: no severity label (critical, warning or info)")
        for key in ("summary", "description"):
            if not re.search(rf"^\s*{key}:", block, flags=re.M):
                problems.append(f"{name}: no {key} annotation")
        url = re.search(r"^\s*runbook_url:\s*(\S+)", block, flags=re.M)
        if not url:
            problems.append(f"{name}: no runbook_url annotation")
        elif not url.group(1).endswith("/docs/operations.md#" + name.lower()):
            problems.append(f"{name}: runbook_url {url.group(1)} does not point at #{name.lower()}")
        if name not in headings:
            problems.append(f"{name}: no '### {name}' entry in {sys.argv[3]}")
        fires = re.search(rf"alertname: {name}\n\s*exp_alerts:\s*\n\s*- exp_labels:", tests)
        quiet = re.search(rf"alertname: {name}\n\s*exp_alerts: \[\]", tests)
        if not fires:
            problems.append(f"{name}: no test case where it fires")
        if not quiet:
            problems.append(f"{name}: no test case where it stays quiet")
    for h in headings:
        if h not in alerts:
            problems.append(f"{sys.argv[3]}: '### {h}' is not an alert of {sys.argv[1]}")

    print(f"{len(alerts)} alerts: {', '.join(alerts)}")
    if problems:
        for p in problems:
            print(f"  PROBLEM: {p}")
        return 1
    print("  each has a severity, summary, description, a runbook entry its runbook_url points at,"
          " and test cases where it fires and where it does not")
    return 0


if __name__ == "__main__":
    sys.exit(main())
