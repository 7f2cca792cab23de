#!/usr/bin/env python3
"""Offline checks of a rendered overlay (kubectl kustomize output) that schemas cannot make.

    check-deploy.py <overlay-name> <rendered.yaml>

- Least privilege: each workload gets only its own secrets (the ingress no database URL, no
  Webflow API token, no warehouse token, no carrier key), and its own AMQP and database users.
- Fail closed: the configuration selects profile = production and a real carrier, and carries
  no secrets.
- The migrate Job is named after the image tag (re-applying a new image makes a new Job).
- An HTTPRoute, if any, routes to a Service and port that exist.
- Every object lands in a namespace (a component added by a derived overlay gets none from
  the overlay it builds on).
- Network policies deny both ways by default; every workload may resolve names and reach
  RabbitMQ, only those with a database URL reach PostgreSQL, only those that call Webflow or
  a carrier reach port 443.
- Connection budget: the PostgreSQL connections of every replica at the autoscaling maxima,
  plus rollout surge, fit max_connections (POSTGRES_MAX_CONNECTIONS, default 200, minus the
  superuser reserve of 3). docs/configuration.md explains the numbers.
"""

import math
import os
import sys
import tomllib

import yaml

MAX_CONNECTIONS = int(os.environ.get("POSTGRES_MAX_CONNECTIONS", "200"))
RESERVED = 3
# Connections an operator's wmsctl may open while a command runs.
WMSCTL = 4
# Which secret keys each workload may see (environment or mounted files).
ALLOWED = {
    "ingress": {"ingress-amqp-url", "shop-webhook-secrets"},
    "enrich": {"enrich-amqp-url", "enrich-database-url", "shop-api-token"},
    "reserve": {"reserve-amqp-url", "reserve-database-url"},
    "ship": {"ship-amqp-url", "ship-database-url", "shipengine-api-key"},
    "notify-webflow": {"notify-webflow-amqp-url", "notify-webflow-database-url", "shop-api-token"},
    "warehouse": {"warehouse-amqp-url", "warehouse-database-url", "warehouse-api-tokens"},
    "reconcile": {"reconcile-amqp-url", "reconcile-database-url", "shop-api-token"},
    "migrate": {"migrate-database-url", "topology-amqp-url"},
}
# Who calls out over HTTPS (Webflow's API, the carrier).
CALLS_OUT = {"enrich", "ship", "notify-webflow", "reconcile"}
# Services whose pool holds worker.concurrency more connections (per-order locks).
LOCK_HOLDERS = {"ship", "notify-webflow"}

errors = []


def fail(message):
    errors.append(message)


def pod_spec(doc):
    kind = doc["kind"]
    if kind in ("Deployment", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def workload_name(doc):
    name = doc["metadata"]["name"]
    return "migrate" if doc["kind"] == "Job" and name.startswith("migrate-") else name


def secret_keys(spec):
    keys = set()
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                keys.add(ref["key"])
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                keys.add("<every key of " + source["secretRef"]["name"] + ">")
    for volume in spec.get("volumes", []):
        secret = volume.get("secret")
        if secret:
            items = secret.get("items")
            if not items:
                keys.add("<every key of " + secret["secretName"] + ">")
            keys.update(item["key"] for item in items or [])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                keys.update(item["key"] for item in source["secret"].get("items", []) or [{"key": "<all>"}])
    return keys


def selects(selector, workload):
    """Whether a pod selector picks the pods labelled app.kubernetes.io/name=<workload>."""
    labels = {"app.kubernetes.io/name": workload, "app.kubernetes.io/part-of": "wms-bridge"}
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def env_value(spec, name):
    for container in spec.get("containers", []):
        for env in container.get("env", []):
            if env["name"] == name and "value" in env:
                return env["value"]
    return None


def main(overlay, path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)

    config = None
    for cm in by_kind.get("ConfigMap", []):
        if "config.toml" in cm.get("data", {}):
            config = tomllib.loads(cm["data"]["config.toml"])
    if config is None:
        fail("no ConfigMap with config.toml")
        config = {}
    if config.get("profile") != "production":
        fail('config.toml: profile must be "production"')
    if config.get("carrier", {}).get("kind") != "shipengine":
        fail('config.toml: carrier.kind must be "shipengine" (the sandbox is refused in production)')
    if config.get("webflow", {}).get("allow_insecure_http"):
        fail("config.toml: webflow.allow_insecure_http is for local runs only")
    for section, keys in config.items():
        if isinstance(keys, dict):
            for key, value in keys.items():
                if key in ("api_tokens", "api_key", "url", "password") and value:
                    fail(f"config.toml: {section}.{key} holds a secret; use the Secret")

    # Least privilege.
    for kind in ("Deployment", "CronJob", "Job"):
        for doc in by_kind.get(kind, []):
            name = workload_name(doc)
            spec = pod_spec(doc)
            allowed = ALLOWED.get(name)
            if allowed is None:
                fail(f"{kind} {name}: unknown workload (add it to ALLOWED in scripts/check-deploy.py)")
                continue
            extra = secret_keys(spec) - allowed
            if extra:
                fail(f"{kind} {name}: gets secrets it does not need: {sorted(extra)}")

    # The migrate Job carries the image tag.
    for job in by_kind.get("Job", []):
        if job["metadata"]["name"].startswith("migrate"):
            spec = job["spec"]["template"]["spec"]
            image = (spec.get("initContainers") or spec["containers"])[0]["image"]
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else "latest"
            if job["metadata"]["name"] != f"migrate-{tag}":
                fail(f"Job {job['metadata']['name']}: must be migrate-{tag} (see the overlay's replacements)")
            if "ttlSecondsAfterFinished" not in job["spec"]:
                fail("the migrate Job needs ttlSecondsAfterFinished")

    # HTTPRoutes point at existing Services and ports.
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    for route in by_kind.get("HTTPRoute", []):
        if not route["spec"].get("parentRefs"):
            fail(f"HTTPRoute {route['metadata']['name']}: no parentRefs")
        for rule in route["spec"]["rules"]:
            for ref in rule.get("backendRefs", []):
                service = services.get(ref["name"])
                if not service or ref["port"] not in [p["port"] for p in service["spec"]["ports"]]:
                    fail(f"HTTPRoute {route['metadata']['name']}: no Service {ref['name']}:{ref['port']}")

    # Every object in a namespace.
    for doc in docs:
        if not doc["metadata"].get("namespace"):
            fail(f"{doc['kind']} {doc['metadata']['name']}: rendered without a namespace")

    # Egress: default deny, then only what each workload needs.
    policies = by_kind.get("NetworkPolicy", [])
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("egress")]
    if not any("Egress" in p["spec"].get("policyTypes", []) for p in deny):
        fail("NetworkPolicy: no default deny of egress")

    def egress_ports(workload):
        ports = set()
        for policy in policies:
            selector = policy["spec"]["podSelector"]
            if not selects(selector, workload):
                continue
            for rule in policy["spec"].get("egress", []):
                ports.update(p["port"] for p in rule.get("ports", []))
        return ports

    for kind in ("Deployment", "CronJob", "Job"):
        for doc in by_kind.get(kind, []):
            name = workload_name(doc)
            ports = egress_ports(name)
            # The migrate Job: the database and the RabbitMQ topology.
            needs = {53, 5432, 5671} if name == "migrate" else {53, 5671}
            if any("database-url" in k for k in secret_keys(pod_spec(doc))):
                needs.add(5432)
            if name in CALLS_OUT:
                needs.add(443)
            if needs - ports:
                fail(f"{kind} {name}: no egress to ports {sorted(needs - ports)}")
            if 443 in ports and name not in CALLS_OUT:
                fail(f"{kind} {name}: may reach port 443 but calls nothing outside")
            if 5432 in ports and 5432 not in needs:
                fail(f"{kind} {name}: may reach PostgreSQL but holds no database URL")

    # Connection budget.
    database = config.get("database", {})
    worker = config.get("worker", {})
    maxima = {}
    for deployment in by_kind.get("Deployment", []):
        maxima[deployment["metadata"]["name"]] = deployment["spec"].get("replicas", 1)
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        maxima[hpa["spec"]["scaleTargetRef"]["name"]] = hpa["spec"]["maxReplicas"]
    for scaled in by_kind.get("ScaledObject", []):
        maxima[scaled["spec"]["scaleTargetRef"]["name"]] = scaled["spec"].get("maxReplicaCount", 100)
    lines = []
    total = 0
    for deployment in by_kind.get("Deployment", []):
        name = deployment["metadata"]["name"]
        spec = pod_spec(deployment)
        if not any("database-url" in k for k in secret_keys(spec)):
            continue
        pool = int(env_value(spec, "WMS__DATABASE__POOL_SIZE") or database.get("pool_size", 16))
        concurrency = int(env_value(spec, "WMS__WORKER__CONCURRENCY") or worker.get("concurrency", 16))
        per_replica = pool + (concurrency if name in LOCK_HOLDERS else 0)
        surge_spec = deployment["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%")
        replicas = maxima[name]
        if isinstance(surge_spec, str) and surge_spec.endswith("%"):
            surge = math.ceil(replicas * int(surge_spec[:-1]) / 100)
        else:
            surge = int(surge_spec)
        connections = per_replica * (replicas + surge)
        lines.append(f"  {name}: {per_replica} x ({replicas} + {surge} surge) = {connections}")
        total += connections
    for cron in by_kind.get("CronJob", []):
        total += database.get("pool_size", 16)
        lines.append(f"  {cron['metadata']['name']} (CronJob): {database.get('pool_size', 16)}")
    if by_kind.get("Job"):
        total += 2
        lines.append("  migrate (Job): 2")
    total += WMSCTL
    lines.append(f"  wmsctl: {WMSCTL}")
    budget = MAX_CONNECTIONS - RESERVED
    if total > budget:
        fail(
            f"connection budget: {total} PostgreSQL connections at the maxima, over {budget} "
            f"(max_connections {MAX_CONNECTIONS} - {RESERVED} reserved):\n" + "\n".join(lines)
        )

    if errors:
        for error in errors:
            print(f"ERROR: overlay {overlay}: {error}", file=sys.stderr)
        sys.exit(1)
    print(
        f"ok: overlay {overlay}: least-privilege secrets, production profile, migrate Job name; "
        f"{total} of {budget} PostgreSQL connections at the maxima"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
