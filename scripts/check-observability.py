#!/usr/bin/env python3
"""Offline checks of deploy/grafana/*.json and deploy/prometheus/alerts.yml (make validate-deploy).

The dashboard: a Grafana dashboard a provisioner or an import accepts (uid, title, schemaVersion,
panels with unique ids, grid positions and targets), every query on the `datasource` template
variable, only known template variables used. The alert rules (promtool checks their PromQL):
every alert has a severity, a summary and a runbook link to a heading of docs/runbook.md, is
named in docs/runbook.md, and its expression is on one line (tests/pipeline/observability.rs reads
the `expr:` lines to check every metric they name is exported).
"""
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
errors = []


def fail(message):
    errors.append(message)


def anchors(markdown):
    """GitHub's heading anchors of a Markdown file."""
    result = set()
    for line in markdown.splitlines():
        match = re.match(r"#+\s+(.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            result.add(slug)
    return result


def check_dashboard(path):
    dash = json.loads(path.read_text())
    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        if key not in dash:
            fail(f"{path}: no `{key}`")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dash.get("uid", "")):
        fail(f"{path}: uid must be 1-40 letters, digits, - or _")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    source = variables.get("datasource")
    if not source or source.get("type") != "datasource" or source.get("query") != "prometheus":
        fail(f"{path}: needs a `datasource` variable of type datasource over prometheus")
    known = set(variables) | {"__rate_interval", "__interval", "__range"}
    ids = set()
    queries = 0
    for panel in dash.get("panels", []):
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            fail(f"{path}: panel id {panel.get('id')} twice")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")) or grid.get("x", 0) + grid.get("w", 0) > 24:
            fail(f"{path}: panel `{title}` has no valid gridPos")
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"{path}: panel `{title}` does not use the datasource variable")
        targets = panel.get("targets") or []
        if not targets:
            fail(f"{path}: panel `{title}` has no targets")
        for target in targets:
            expr = target.get("expr", "")
            if not expr or not target.get("refId"):
                fail(f"{path}: panel `{title}` has a target without expr or refId")
            if target.get("datasource", {}).get("uid") != "${datasource}":
                fail(f"{path}: a target of `{title}` does not use the datasource variable")
            for name in re.findall(r"\$\{?(\w+)", expr):
                if name not in known:
                    fail(f"{path}: panel `{title}` uses an unknown variable ${name}")
            if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                fail(f"{path}: panel `{title}`: unbalanced brackets in {expr}")
            queries += 1
    print(f"ok: {path.relative_to(ROOT)} ({len(ids)} panels, {queries} queries)")


def check_alerts(path, runbook):
    text = path.read_text()
    rules = yaml.safe_load(text)
    one_line = {line.strip()[len("expr:"):].strip() for line in text.splitlines() if line.strip().startswith("expr:")}
    heading_anchors = anchors(runbook)
    count = 0
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert")
            if not name:
                continue
            count += 1
            if rule.get("expr", "").strip() not in one_line:
                fail(f"{path}: {name}: write the expression on the `expr:` line itself")
            if rule.get("labels", {}).get("severity") not in ("page", "warn", "info"):
                fail(f"{path}: {name}: severity must be page, warn or info")
            annotations = rule.get("annotations", {})
            if not annotations.get("summary"):
                fail(f"{path}: {name}: no summary")
            url = annotations.get("runbook_url", "")
            if not url.startswith("docs/runbook.md#") or url.split("#", 1)[1] not in heading_anchors:
                fail(f"{path}: {name}: runbook_url `{url}` is not a heading of docs/runbook.md")
            if f"`{name}`" not in runbook:
                fail(f"{path}: {name} is not described in docs/runbook.md")
    print(f"ok: {path.relative_to(ROOT)} ({count} alerts, each in docs/runbook.md)")


runbook = (ROOT / "docs/runbook.md").read_text()
dashboards = sorted((ROOT / "deploy/grafana").glob("*.json"))
if not dashboards:
    fail("deploy/grafana has no dashboard")
for dashboard in dashboards:
    check_dashboard(dashboard)
check_alerts(ROOT / "deploy/prometheus/alerts.yml", runbook)
if errors:
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    sys.exit(1)
