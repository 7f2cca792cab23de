#!/usr/bin/env python3
"""Offline checks of a rendered overlay (kubectl kustomize output) or Helm release (helm
template output) that schemas cannot make.

    check-deploy.py <overlay-name> <rendered.yaml>
    check-deploy.py --helm [--require-digest] <name> <rendered.yaml>

- Least privilege: each workload gets only its own secrets (the ingress no Webflow API token,
  no warehouse token, no carrier key; its database role may only read the stores), and its own
  AMQP and database users. The key that seals store secrets (secrets-key) only where sealed
  values are written or opened.
- Fail closed: the configuration selects profile = production and a real carrier, and carries
  no secrets; the warehouse has scoped operator tokens ([[warehouse.tokens]],
  one Secret file each), not legacy api_tokens (an admin on every store).
- Every service binary accepts its pod's configuration: each Deployment and CronJob is run as
  its pod would be (the rendered config.toml, its environment, its mounted files; Secret values
  replaced by placeholders of the documented shape: amqps:// URLs with the service's own user,
  postgres:// URLs with its own role) with WMS_CHECK_CONFIG=1, so what the service would refuse
  at start in production (database TLS off, plain amqp://, insecure console cookies, a missing
  token file...) fails here. The binaries come from WMS_BIN_DIR, else target/debug
  (scripts/validate-deploy.sh builds them).
- The migrate Job of an overlay is named after the release's version label (a new release makes
  a new Job); in a Helm render (--helm) it is a pre-install and pre-upgrade hook with a valid
  name instead.
- Production overlays (prod*) and, with --require-digest, a Helm render pin every container
  image by digest (name@sha256:...).
- reconcile, when a Deployment (loop mode), runs one replica with strategy Recreate, without
  --once, its metrics scraped.
- An HTTPRoute, if any, routes to a Service and port that exist.
- Every object lands in a namespace (a component added by a derived overlay gets none from
  the overlay it builds on).
- Network policies deny both ways by default; every workload may resolve names and reach
  RabbitMQ (but prune: PostgreSQL only), only those with a database URL reach
  PostgreSQL, only those that call Webflow or a carrier reach port 443 (the warehouse too: it
  registers an onboarded store's webhooks).
- Alerts can fire: a workload whose metrics an alert names (deploy/prometheus/alerts.yml) is a
  long-lived Deployment Prometheus scrapes, not a CronJob whose process exits before a scrape.
- Connection budget: the PostgreSQL connections of every replica at the autoscaling maxima,
  plus rollout surge, fit max_connections (POSTGRES_MAX_CONNECTIONS, default 200, minus the
  superuser reserve of 3). docs/configuration.md explains the numbers.
"""

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

MAX_CONNECTIONS = int(os.environ.get("POSTGRES_MAX_CONNECTIONS", "200"))
RESERVED = 3
# Connections an operator's wmsctl may open while a command runs.
WMSCTL = 4
# Which secret keys each workload may see (environment or mounted files).
ALLOWED = {
    "ingress": {"ingress-amqp-url", "ingress-database-url", "shop-webhook-secrets", "secrets-key", "webflow-oauth-client-secret"},
    "enrich": {"enrich-amqp-url", "enrich-database-url", "shop-api-token", "secrets-key"},
    "reserve": {"reserve-amqp-url", "reserve-database-url"},
    "ship": {"ship-amqp-url", "ship-database-url", "shipengine-api-key"},
    "notify-webflow": {"notify-webflow-amqp-url", "notify-webflow-database-url", "shop-api-token", "secrets-key"},
    "warehouse": {"warehouse-amqp-url", "warehouse-database-url", "secrets-key", "webflow-oauth-client-secret"},
    "reconcile": {"reconcile-amqp-url", "reconcile-database-url", "shop-api-token", "secrets-key"},
    "migrate": {"migrate-database-url", "topology-amqp-url"},
    "prune": {"prune-database-url"},
}
# Secret keys a workload may see by prefix: the warehouse's operator tokens, one file each.
ALLOWED_PREFIX = {"warehouse": "warehouse-token-"}
# ConfigMaps the cluster provides (not rendered here), and the keys the pods read.
EXTERNAL_CONFIGMAPS = {"wms-postgres-ca": ["ca.crt"]}
# Binaries whose start-up configuration check the pods are run through (not `wmsctl migrate`).
SERVICE_BINARIES = {"ingress", "enrich", "reserve", "ship", "notify-webflow", "warehouse", "reconcile", "prune"}
# Workloads that talk to PostgreSQL only (no AMQP URL, no egress to RabbitMQ).
DATABASE_ONLY = {"prune"}
AMQP_PORTS = {5671, 5672}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# The prune job's pool (crates/retention: two connections, whatever database.pool_size says).
PRUNE_CONNECTIONS = 2
# Who calls out over HTTPS (Webflow's API, the carrier).
CALLS_OUT = {"enrich", "ship", "notify-webflow", "reconcile", "warehouse"}
# Which workload exports the metrics of each prefix the alert rules name.
METRIC_SOURCES = {"wms_reconcile_": "reconcile"}
# Connections a service opens beyond database.pool_size (reconcile: the pass's job lock).
EXTRA_CONNECTIONS = {"reconcile": 1}
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


def containers(spec):
    return spec.get("initContainers", []) + spec.get("containers", [])


def main(overlay, path, helm=False, require_digest=False):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)

    config = None
    for cm in by_kind.get("ConfigMap", []):
        if "config.toml" in cm.get("data", {}):
            parsed = tomllib.loads(cm["data"]["config.toml"])
            if config is not None and parsed != config:
                fail(f"ConfigMap {cm['metadata']['name']}: config.toml differs from the other copy")
            config = parsed
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

    # The overlays and the Helm chart give the warehouse scoped operator tokens.
    check_operator_tokens(config, by_kind)

    # Least privilege.
    for kind in ("Deployment", "CronJob", "Job"):
        for doc in by_kind.get(kind, []):
            name = workload_name(doc)
            spec = pod_spec(doc)
            allowed = ALLOWED.get(name)
            if allowed is None:
                fail(f"{kind} {name}: unknown workload (add it to ALLOWED in scripts/check-deploy.py)")
                continue
            prefix = ALLOWED_PREFIX.get(name)
            extra = {k for k in secret_keys(spec) - allowed if not (prefix and k.startswith(prefix))}
            if extra:
                fail(f"{kind} {name}: gets secrets it does not need: {sorted(extra)}")

    # Images by digest.
    if require_digest or (not helm and overlay.startswith("prod")):
        for kind in ("Deployment", "CronJob", "Job"):
            for doc in by_kind.get(kind, []):
                for container in containers(pod_spec(doc)):
                    if not re.search(r"@sha256:[0-9a-f]{64}$", container["image"]):
                        fail(f"{kind} {doc['metadata']['name']}: image {container['image']} is not pinned by digest")

    # reconcile in loop mode: one at a time, scraped.
    for deployment in by_kind.get("Deployment", []):
        if deployment["metadata"]["name"] != "reconcile":
            continue
        if deployment["spec"].get("replicas", 1) != 1:
            fail("Deployment reconcile: must run one replica")
        if deployment["spec"].get("strategy", {}).get("type") != "Recreate":
            fail("Deployment reconcile: needs strategy Recreate (two passes must not overlap)")
        command = pod_spec(deployment)["containers"][0].get("command", [])
        if "--once" in command:
            fail("Deployment reconcile: --once exits after one pass; loop mode runs without it")
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            fail("Deployment reconcile: its metrics are not scraped (prometheus.io/scrape)")

    # The migrate Job: a Helm hook before install and upgrade.
    for job in by_kind.get("Job", []):
        if helm and job["metadata"]["name"].startswith("migrate"):
            name = job["metadata"]["name"]
            hooks = set(job["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(","))
            if not {"pre-install", "pre-upgrade"} <= hooks:
                fail(f"Job {name}: must be a pre-install,pre-upgrade hook (helm.sh/hook)")
            if not DNS_LABEL.match(name) or len(name) > 63:
                fail(f"Job {name}: not a valid Job name (a DNS label of at most 63 characters)")
            if "ttlSecondsAfterFinished" not in job["spec"]:
                fail("the migrate Job needs ttlSecondsAfterFinished")
    # The migrate Job of an overlay carries the release's version.
    for job in [] if helm else by_kind.get("Job", []):
        if job["metadata"]["name"].startswith("migrate"):
            version = job["metadata"].get("labels", {}).get("app.kubernetes.io/version")
            if not version:
                fail("the migrate Job has no app.kubernetes.io/version label (the overlay's `labels`)")
            elif job["metadata"]["name"] != f"migrate-{version}":
                fail(f"Job {job['metadata']['name']}: must be migrate-{version} (see the overlay's replacements)")
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
            # The migrate Job: the database and the RabbitMQ topology; prune: the database only.
            if name == "migrate":
                needs = {53, 5432, 5671}
            elif name in DATABASE_ONLY:
                needs = {53, 5432}
            else:
                needs = {53, 5671}
            if any("database-url" in k for k in secret_keys(pod_spec(doc))):
                needs.add(5432)
            if name in CALLS_OUT:
                needs.add(443)
            if needs - ports:
                fail(f"{kind} {name}: no egress to ports {sorted(needs - ports)}")
            if 443 in ports and name not in CALLS_OUT:
                fail(f"{kind} {name}: may reach port 443 but calls nothing outside")
            if name in DATABASE_ONLY and ports & {5671, 5672}:
                fail(f"{kind} {name}: may reach RabbitMQ but talks to PostgreSQL only")
            if 5432 in ports and 5432 not in needs:
                fail(f"{kind} {name}: may reach PostgreSQL but holds no database URL")
            if name in DATABASE_ONLY and ports & AMQP_PORTS:
                fail(f"{kind} {name}: may reach RabbitMQ but needs PostgreSQL only")

    # Alerts can fire.
    alerts = (Path(__file__).resolve().parent.parent / "deploy/prometheus/alerts.yml").read_text()
    scraped = {
        d["metadata"]["name"]
        for d in by_kind.get("Deployment", [])
        if d["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true"
    }
    for prefix, source in METRIC_SOURCES.items():
        if prefix in alerts and source not in scraped:
            fail(f"alerts name {prefix}* metrics, exported by {source}, which is not a scraped Deployment")

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
        per_replica = pool + (concurrency if name in LOCK_HOLDERS else 0) + EXTRA_CONNECTIONS.get(name, 0)
        strategy = deployment["spec"].get("strategy", {})
        surge_spec = strategy.get("rollingUpdate", {}).get("maxSurge", "25%")
        replicas = maxima[name]
        if strategy.get("type") == "Recreate":
            surge = 0
        elif isinstance(surge_spec, str) and surge_spec.endswith("%"):
            surge = math.ceil(replicas * int(surge_spec[:-1]) / 100)
        else:
            surge = int(surge_spec)
        connections = per_replica * (replicas + surge)
        lines.append(f"  {name}: {per_replica} x ({replicas} + {surge} surge) = {connections}")
        total += connections
    for cron in by_kind.get("CronJob", []):
        pool = PRUNE_CONNECTIONS if cron["metadata"]["name"] == "prune" else database.get("pool_size", 16)
        total += pool
        lines.append(f"  {cron['metadata']['name']} (CronJob): {pool}")
    if any(job["metadata"]["name"].startswith("migrate") for job in by_kind.get("Job", [])):
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

    checked = check_with_binaries(docs, by_kind)

    if errors:
        for error in errors:
            print(f"ERROR: {'chart' if helm else 'overlay'} {overlay}: {error}", file=sys.stderr)
        sys.exit(1)
    print(
        f"ok: {'chart' if helm else 'overlay'} {overlay}: least-privilege secrets, production profile, "
        f"{'migrate hook' if helm else 'migrate Job name'}{', images by digest' if require_digest else ''}, "
        f"{checked} services accept their pods' configuration; "
        f"{total} of {budget} PostgreSQL connections at the maxima"
    )


def check_operator_tokens(config, by_kind):
    """Named, scoped tokens from Secret files; no legacy api_tokens (an admin on every store)."""
    warehouse = config.get("warehouse", {})
    if warehouse.get("api_tokens"):
        fail("config.toml: warehouse.api_tokens are admins on every store; use [[warehouse.tokens]]")
    if not warehouse.get("tokens"):
        fail("config.toml: the warehouse needs [[warehouse.tokens]] (named, scoped operator tokens)")
    for token in warehouse.get("tokens", []):
        if "token_file" not in token:
            fail(f"config.toml: warehouse.tokens {token.get('name')}: use token_file (a Secret mount)")
    for deployment in by_kind.get("Deployment", []):
        if any(
            env.get("name") == "WMS__WAREHOUSE__API_TOKENS"
            for container in pod_spec(deployment).get("containers", [])
            for env in container.get("env", [])
        ):
            name = deployment["metadata"]["name"]
            fail(f"Deployment {name}: legacy WMS__WAREHOUSE__API_TOKENS (admin on every store)")


def placeholder_secret(workload, key):
    """A Secret value of the documented shape (the real ones are never rendered)."""
    user = workload.replace("-", "_")
    if key.endswith("-amqp-url"):
        return f"amqps://{user}:placeholder@rabbitmq.wms.svc:5671/%2f"
    if key.endswith("-database-url"):
        return f"postgres://{user}:placeholder@postgres.wms.svc:5432/wms"
    if key == "shop-webhook-secrets":
        return "placeholder-webhook-secret\n"
    if key == "secrets-key":
        # `wmsctl secrets new-key`'s shape: <key id>:<64 hex digits>.
        return "placeholder:" + "ab" * 32 + "\n"
    return f"placeholder-{key}\n"


def check_with_binaries(docs, by_kind):
    """Runs each service's binary as its pod would start it, with WMS_CHECK_CONFIG=1."""
    bin_dir = os.environ.get("WMS_BIN_DIR") or os.path.join(os.path.dirname(__file__), "..", "target", "debug")
    configmaps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in by_kind.get("ConfigMap", [])}
    checked = 0
    for kind in ("Deployment", "CronJob"):
        for doc in by_kind.get(kind, []):
            name = workload_name(doc)
            spec = pod_spec(doc)
            for container in spec.get("containers", []):
                command = container.get("command") or []
                binary = os.path.basename(command[0]) if command else ""
                if binary not in SERVICE_BINARIES:
                    continue
                path = os.path.join(bin_dir, binary)
                if not os.path.isfile(path):
                    fail(f"{kind} {name}: no binary {path} to check its configuration with (cargo build --bins)")
                    continue
                outcome = run_as_pod(path, name, spec, container, configmaps)
                if outcome:
                    fail(f"{kind} {name}: {binary} refuses its configuration: {outcome}")
                checked += 1
    return checked


def run_as_pod(binary, workload, spec, container, configmaps):
    """The binary's configuration check in a stand-in of the pod's file system; None when it passes."""
    root = tempfile.mkdtemp(prefix="wms-check-")
    try:
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
        for mount in mounts:
            target = os.path.join(root, mount["mountPath"].lstrip("/"))
            os.makedirs(target, exist_ok=True)
            volume = volumes.get(mount["name"], {})
            files = {}
            if "configMap" in volume:
                cm = volume["configMap"]["name"]
                data = configmaps.get(cm)
                if data is None:
                    data = {key: "-----BEGIN CERTIFICATE-----\n" for key in EXTERNAL_CONFIGMAPS.get(cm, [])}
                items = volume["configMap"].get("items")
                files = {i["path"]: data.get(i["key"], "") for i in items} if items else dict(data)
            elif "secret" in volume:
                items = volume["secret"].get("items") or []
                files = {i["path"]: placeholder_secret(workload, i["key"]) for i in items}
            elif "projected" in volume:
                for source in volume["projected"].get("sources", []):
                    for item in (source.get("secret") or {}).get("items", []):
                        files[item["path"]] = placeholder_secret(workload, item["key"])
            for relative, content in files.items():
                with open(os.path.join(target, relative), "w") as f:
                    f.write(content)

        # One pass, longest mount first, whole path segments only (/etc/wms is not /etc/wms-x).
        pattern = re.compile(
            r"(?<![\w/.-])(" + "|".join(re.escape(m["mountPath"]) for m in mounts) + r")(?=/|[\"']|$)"
        ) if mounts else None

        def rooted(text):
            if pattern is None:
                return text
            return pattern.sub(lambda m: os.path.join(root, m.group(1).lstrip("/")), text)

        # Paths inside the mounts, as the pod sees them, become paths in the stand-in.
        for mount in mounts:
            directory = os.path.join(root, mount["mountPath"].lstrip("/"))
            for entry in os.listdir(directory):
                file = os.path.join(directory, entry)
                if entry.endswith((".toml", ".yaml", ".yml")):
                    with open(file) as f:
                        text = f.read()
                    with open(file, "w") as f:
                        f.write(rooted(text))
        env = {"PATH": os.environ.get("PATH", ""), "WMS_CHECK_CONFIG": "1"}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = rooted(str(item["value"]))
            elif "secretKeyRef" in item.get("valueFrom", {}):
                env[item["name"]] = placeholder_secret(workload, item["valueFrom"]["secretKeyRef"]["key"]).strip()
        args = [binary] + [a for a in (container.get("command") or [])[1:]] + (container.get("args") or [])
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            return (result.stderr or result.stdout).strip()
        return None
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--helm", action="store_true", help="the input is a helm template render")
    parser.add_argument("--require-digest", action="store_true", help="every image by digest")
    parser.add_argument("name")
    parser.add_argument("rendered")
    args = parser.parse_args()
    main(args.name, args.rendered, helm=args.helm, require_digest=args.require_digest)
