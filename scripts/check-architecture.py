#!/usr/bin/env python3
"""Checks the crate graph against the layering rules in docs/architecture.md.

Reads `cargo metadata` (workspace members only) and fails, naming the arrow, when:
- a library crate (no binary target) depends on a crate with a binary target;
- an HTTP service, job or CLI depends on the consumer runtime (`worker`);
- a CLI or tool depends on a crate with a binary target;
- `domain` depends on any other workspace crate (it stays pure).
Dev-dependencies are the tests' business and are not checked; the e2e crate (`tests/`) may
use every crate.
"""

import json
import subprocess
import sys

CONSUMER_RUNTIME = "worker"
# Processes that must not run on the consumer runtime: HTTP services, jobs and tools.
NOT_CONSUMERS = {"ingress", "warehouse", "webflow-sim", "reconcile", "reconciliation", "wmsctl", "loadgen"}
TOOLS = {"wmsctl", "loadgen"}
TEST_CRATES = {"e2e", "test-support"}


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
    has_binary = {
        name for name, p in packages.items() if any("bin" in t["kind"] for t in p["targets"])
    }
    errors = []
    for name, package in sorted(packages.items()):
        if name in TEST_CRATES:
            continue
        for dep in package["dependencies"]:
            target = dep["name"]
            if dep.get("kind") is not None or target not in packages:
                continue
            arrow = f"{name} -> {target}"
            if name == "domain":
                errors.append(f"{arrow}: `domain` is pure and depends on no other crate of ours")
            if target in has_binary and name not in has_binary:
                errors.append(f"{arrow}: a library depends on a crate with a binary")
            if target == CONSUMER_RUNTIME and name in NOT_CONSUMERS:
                errors.append(f"{arrow}: only workers run on the consumer runtime")
            if name in TOOLS and target in has_binary:
                errors.append(f"{arrow}: a tool depends on a binary crate")
    if errors:
        print("crate graph breaks the layering rules (docs/architecture.md):", file=sys.stderr)
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    print(f"crate graph: {len(packages)} crates, layering rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
