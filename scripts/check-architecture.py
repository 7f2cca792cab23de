#!/usr/bin/env python3
"""Checks the crate graph against the layering rules in docs/architecture.md.

Reads `cargo metadata` (workspace members only) and fails, naming the arrow or the file, when:
- `domain` or `wms-settings` depends on another crate of ours: they are the leaves (pure types;
  the settings loader) that every layer may use;
- an API client (`webflow`, `carrier`) depends on anything of ours but the leaves: every layer
  uses them, so they must not pull in the runtime plumbing (`platform`: RabbitMQ, actix,
  OpenTelemetry);
- a crate other than a worker service depends on the consumer runtime (`worker`): HTTP
  services, jobs, tools and the libraries under them never run on it;
- anything but the tests depends on a service process (a worker service, `ingress`,
  `warehouse`): its library exists for its own binary and for the e2e tests, never as a
  building block of another process;
- anything but a tool or the tests depends on a job or tool (`reconcile`, `retention`, `webflow-sim`,
  `wmsctl`, `loadgen`): a tool may run a job's library (`wmsctl reconcile`) or the simulator
  in-process (the load generator), a service or library may not;
- a binary target is not a thin shell over its own crate's library: the crate must have a
  library target and the binary's source must stay within MAIN_MAX_LINES lines (load the
  settings, call the library's `build`, run until stopped), TOOL_MAIN_MAX_LINES for a tool
  (its `main.rs` also holds its command-line definition). Because every binary is such a shell, depending on a crate
  that also has a binary is no longer a problem in itself; the rules above say which crates
  may be depended on.
Dev-dependencies are the tests' business and are checked for one arrow only: a crate's tests
never link another service process (they drive it over its wire, or live in the e2e crate). The
e2e crate (`tests/`) and `test-support` may use every crate.
"""

import json
import subprocess
import sys
from pathlib import Path

LEAVES = {"domain", "wms-settings"}
API_CLIENTS = {"webflow", "carrier", "secrets-at-rest"}
CONSUMER_RUNTIME = "worker"
WORKER_SERVICES = {"enrich", "reserve", "ship", "notify-webflow"}
SERVICE_PROCESSES = WORKER_SERVICES | {"ingress", "warehouse"}
JOBS = {"reconcile", "retention", "webflow-sim"}
TOOLS = {"wmsctl", "loadgen", "launcher"}
TEST_CRATES = {"e2e", "test-support"}
# A service's or job's `main.rs` (STYLE.md: "about 30-40 lines"); a tool's also holds its
# command-line definition and dispatch.
MAIN_MAX_LINES = 40
TOOL_MAIN_MAX_LINES = 60
# Binaries still holding their commands, with the reason; remove an entry once it is thin.
THICK_MAINS = {
    "wmsctl": "the operator commands (anyhow-based) still live in main.rs",
}


def main() -> int:
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    packages = {p["name"]: p for p in metadata["packages"]}
    errors = []
    for name, package in sorted(packages.items()):
        errors.extend(check_binaries(name, package))
        if name in TEST_CRATES:
            continue
        for dep in package["dependencies"]:
            target = dep["name"]
            if target not in packages or dep.get("kind") == "build":
                continue
            arrow = f"{name} -> {target}"
            if dep.get("kind") == "dev":
                # A crate's own tests drive another process over its wire (HTTP, AMQP) or live
                # in the e2e crate: linking a service's library into them is the same arrow.
                if target in SERVICE_PROCESSES and target != name:
                    errors.append(f"{arrow} (dev): only the test crates start a service in-process")
                continue
            if name in LEAVES:
                errors.append(f"{arrow}: `{name}` is a leaf and depends on no other crate of ours")
            if name in API_CLIENTS and target not in LEAVES:
                errors.append(f"{arrow}: an API client depends only on {', '.join(sorted(LEAVES))}")
            if target == CONSUMER_RUNTIME and name not in WORKER_SERVICES:
                errors.append(f"{arrow}: only worker services run on the consumer runtime")
            if target in SERVICE_PROCESSES:
                errors.append(f"{arrow}: nothing but the tests depends on a service process")
            if target in JOBS | TOOLS and name not in TOOLS:
                errors.append(f"{arrow}: only tools depend on a job or a tool")
    if errors:
        print("crate graph breaks the layering rules (docs/architecture.md):", file=sys.stderr)
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    print(f"crate graph: {len(packages)} crates, layering rules hold")
    return 0


def check_binaries(name: str, package: dict) -> list:
    """Every binary target is a thin shell over its own crate's library."""
    targets = package["targets"]
    binaries = [t for t in targets if "bin" in t["kind"]]
    if not binaries:
        return []
    errors = []
    if not any("lib" in t["kind"] for t in targets):
        errors.append(f"{name}: has a binary but no library for it to call")
    if name in THICK_MAINS:
        return errors
    limit = TOOL_MAIN_MAX_LINES if name in TOOLS else MAIN_MAX_LINES
    for binary in binaries:
        path = Path(binary["src_path"])
        lines = len(path.read_text().splitlines())
        if lines > limit:
            errors.append(
                f"{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}: "
                f"binary `{binary['name']}` has {lines} lines (at most {limit}): "
                "move what it does into the library"
            )
    return errors


if __name__ == "__main__":
    sys.exit(main())
