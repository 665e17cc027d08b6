"""The Kubernetes manifests (deploy/kubernetes), checked without a cluster.

Each Kustomization is rendered here as ``kubectl apply -k`` would (its resources, namespace and images: the only
keys it may use, so the rendering stays faithful), then every object is validated against the Kubernetes API's
schemas in strict mode (unknown fields fail) with kubernetes-validate, and the custom resources (KubeRay's
RayCluster, Kueue's queues) against their CRDs' schemas vendored in tests/assets/crds, whose pod templates refer to
the same strict core schemas. Then the project's own rules: the files and the Kustomizations agree, every reference
resolves (ConfigMaps, Secrets created as docs/kubernetes.md says, selectors, the Ray head's address, Kueue's
queues and quota), the settings are real and parse, the probes hit the API's health routes, the migration works,
the worker pools match the queues in the docs and outlive the workers' shutdown grace, every container is
unprivileged. Each check is a function that lists problems; the last tests break a copy of the manifests and
expect each check to say so.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from api.routes import health
from jobcore.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"
CRDS = REPO / "tests" / "assets" / "crds"
DOCS = REPO / "docs" / "kubernetes.md"
CONSTRAINTS = REPO / "constraints.txt"

# the oldest Kubernetes the docs promise and the newest kubernetes-validate knows
KUBERNETES_VERSIONS = ("1.30", "1.37")
K8S_DEFINITIONS = "https://kubernetes.io/api/_definitions.json"

Doc = dict[str, Any]

# What the renderer below implements of a Kustomization; anything else would make its output differ from kubectl's.
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "images"}
# Core kinds without a namespace (kustomize's namespace transformer leaves them alone); CRDs' scope is in their file.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass", "PriorityClass"}
NAMESPACED = {
    "ConfigMap",
    "Deployment",
    "Job",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "Secret",
    "Service",
    "ServiceAccount",
}

# The images' user (docker/*.Dockerfile: APP_UID/APP_GID)
APP_UID = 10001
# A worker's pod must outlive its job's checkpoint at shutdown by this much (Celery's exit, the requeue)
SHUTDOWN_MARGIN_S = 30
# The Secrets the pods read and the keys each must hold: docs/kubernetes.md creates them (none is committed)
REQUIRED_SECRET_KEYS = {
    "finetuning-secrets": {"FINETUNING_DATABASE_URL", "FINETUNING_BROKER_URL", "FINETUNING_SECRETS_KEY"},
    "finetuning-bucket": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    "finetuning-hf": {"HF_TOKEN"},
}
KUEUE_LABEL = "kueue.x-k8s.io/queue-name"
QUEUE_LABEL = "finetuning.silogen.ai/queue"
GPU = "nvidia.com/gpu"


# -- loading and rendering ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    source: Path
    doc: Doc

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind"))

    @property
    def name(self) -> str:
        return str(self.doc.get("metadata", {}).get("name"))

    @property
    def label(self) -> str:
        return f"{self.source.relative_to(DEPLOY)}:{self.kind}/{self.name}"


def load_yaml_documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization_dirs() -> list[Path]:
    return sorted(path.parent for path in DEPLOY.rglob("kustomization.yaml"))


@cache
def crd_kinds() -> dict[str, dict[str, Any]]:
    """``apiVersion/kind`` -> {scope, schema} of the vendored custom resources."""
    kinds: dict[str, dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        kinds.update(yaml.safe_load(path.read_text())["kinds"])
    return kinds


def type_key(doc: Doc) -> str:
    return f"{doc.get('apiVersion')}/{doc.get('kind')}"


def is_namespaced(doc: Doc) -> bool:
    kind = str(doc.get("kind"))
    if type_key(doc) in crd_kinds():
        return bool(crd_kinds()[type_key(doc)]["scope"] == "Namespaced")
    if kind in CLUSTER_SCOPED:
        return False
    if kind in NAMESPACED:
        return True
    raise AssertionError(f"{type_key(doc)}: its scope is unknown here; add it to CLUSTER_SCOPED or NAMESPACED")


def image_name(image: str) -> str:
    """The image without its tag or digest."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return image[: len(image) - len(last)] + last.split(":", 1)[0]


def containers_anywhere(node: Any) -> Iterator[Doc]:
    """Every container and init container in an object, at any depth (as kustomize's image transformer finds them)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
            else:
                yield from containers_anywhere(value)
    elif isinstance(node, list):
        for item in node:
            yield from containers_anywhere(item)


def render(directory: Path) -> list[Manifest]:
    """A Kustomization's objects as ``kubectl kustomize`` makes them (for the keys in KUSTOMIZATION_KEYS)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    manifests: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            manifests += render(path)
        else:
            manifests += [Manifest(path, doc) for doc in load_yaml_documents(path)]
    namespace = kustomization.get("namespace")
    images = {image["name"]: image for image in kustomization.get("images", [])}
    rendered = []
    for manifest in manifests:
        doc = copy.deepcopy(manifest.doc)
        if namespace and is_namespaced(doc):
            doc.setdefault("metadata", {})["namespace"] = namespace
        for container in containers_anywhere(doc):
            override = images.get(image_name(str(container.get("image", ""))))
            if override:
                container["image"] = f"{override.get('newName', override['name'])}:{override['newTag']}"
        rendered.append(Manifest(manifest.source, doc))
    return rendered


@cache
def rendered() -> dict[Path, list[Manifest]]:
    """Each top-level Kustomization (one not included by another) and its objects."""
    included = set()
    for directory in kustomization_dirs():
        for entry in yaml.safe_load((directory / "kustomization.yaml").read_text()).get("resources", []):
            if (directory / entry).is_dir():
                included.add((directory / entry).resolve())
    return {d: render(d) for d in kustomization_dirs() if d.resolve() not in included}


def all_manifests() -> list[Manifest]:
    return [m for manifests in rendered().values() for m in manifests]


def docs_of(manifests: list[Manifest]) -> list[Doc]:
    return [m.doc for m in manifests]


# -- schemas -----------------------------------------------------------------------------------------------------


@cache
def k8s_definitions(version: str) -> Doc:
    folder = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}.0-local-strict"
    return dict(json.loads((folder / "_definitions.json").read_text()))


def crd_json_schema(schema: Any, top: bool = True) -> Any:
    """An openAPIV3Schema as a JSON Schema: closed objects (strict), core types by reference, ObjectMeta checked."""
    if isinstance(schema, list):
        return [crd_json_schema(item, False) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("k8s:"):
        return {"$ref": f"{K8S_DEFINITIONS}#/$defs/{ref[4:]}"}
    out = {key: crd_json_schema(value, False) for key, value in schema.items()}
    if schema.get("nullable"):
        out["type"] = [schema["type"], "null"]
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    if top:
        out["properties"]["metadata"] = {
            "$ref": f"{K8S_DEFINITIONS}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        }
    return out


@cache
def crd_validator(key: str, version: str) -> jsonschema.protocols.Validator:
    definitions = Resource.from_contents(k8s_definitions(version))
    registry: Registry[Any] = Registry().with_resource(K8S_DEFINITIONS, definitions)
    schema = crd_json_schema(crd_kinds()[key]["schema"])
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_problems(doc: Doc, version: str) -> list[str]:
    """What the API server's schema (strict field validation) would reject in ``doc``."""
    key = type_key(doc)
    if key in crd_kinds():
        errors = sorted(crd_validator(key, version).iter_errors(doc), key=lambda e: list(e.absolute_path))
        return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path)) or '<root>'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


# -- what the manifests say --------------------------------------------------------------------------------------


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


@dataclass
class PodTemplate:
    """A pod template in an object (a Deployment's, a Job's, a RayCluster group's) and what its pods get."""

    owner: Doc
    where: str
    template: Doc
    replicas: int
    configmaps: list[Doc]  # the ConfigMaps next to it, for its containers' environment

    @property
    def spec(self) -> Doc:
        return dict(self.template["spec"])

    @property
    def labels(self) -> dict[str, str]:
        labels = dict(self.template.get("metadata", {}).get("labels", {}))
        if self.owner["kind"] == "RayCluster":  # KubeRay labels every pod with its cluster
            labels["ray.io/cluster"] = self.owner["metadata"]["name"]
        return labels

    @property
    def containers(self) -> list[Doc]:
        return [*self.spec.get("initContainers", []), *self.spec["containers"]]

    def env(self, container: Doc) -> dict[str, str]:
        """The literal environment of a container: its ConfigMaps' data, then its own env entries over them."""
        values: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                config = [c for c in self.configmaps if c["metadata"]["name"] == source["configMapRef"]["name"]]
                values.update(config[0].get("data", {}) if config else {})
        values.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        return values


def pod_templates(docs: list[Doc]) -> list[PodTemplate]:
    configmaps = of_kind(docs, "ConfigMap")
    found = []
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Deployment":
            found.append(PodTemplate(doc, name, doc["spec"]["template"], doc["spec"].get("replicas", 1), configmaps))
        elif doc["kind"] == "Job":
            found.append(PodTemplate(doc, name, doc["spec"]["template"], 1, configmaps))
        elif doc["kind"] == "RayCluster":
            head = doc["spec"]["headGroupSpec"]["template"]
            found.append(PodTemplate(doc, f"{name} head", head, 1, configmaps))
            for group in doc["spec"].get("workerGroupSpecs", []):
                where = f"{name} group {group['groupName']}"
                found.append(PodTemplate(doc, where, group["template"], group.get("replicas", 0), configmaps))
    return found


def worker_pools(docs: list[Doc]) -> list[PodTemplate]:
    return [
        t
        for t in pod_templates(docs)
        if t.owner["kind"] == "Deployment" and t.labels.get("app.kubernetes.io/component") == "worker"
    ]


def configmap_data(docs: list[Doc]) -> dict[str, str]:
    return dict(one(docs, "ConfigMap", "finetuning-config")["data"])


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def documented_secrets(text: str) -> dict[str, set[str]]:
    """``kubectl ... create secret generic NAME --from-literal=KEY=...`` in the docs: NAME -> its KEYs."""
    commands = re.sub(r"\\\n\s*", " ", text)  # join continued lines
    secrets: dict[str, set[str]] = {}
    for line in commands.splitlines():
        found = re.search(r"create secret generic ([a-z0-9-]+)(.*)", line)
        if found:
            keys = set(re.findall(r"--from-literal=([A-Za-z_][A-Za-z0-9_]*)=", found.group(2)))
            secrets.setdefault(found.group(1), set()).update(keys)
    return secrets


def quantity(value: Any) -> float:
    """A Kubernetes quantity as a number (the suffixes these manifests use)."""
    text = str(value)
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in suffixes.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


# -- the checks: each lists what is wrong ------------------------------------------------------------------------


def kustomization_problems(listed: dict[Path, list[str]], files: list[Path]) -> list[str]:
    """Every YAML file is listed by exactly one Kustomization, and every listed file exists."""
    problems = []
    claimed: dict[Path, list[Path]] = {}
    for directory, entries in listed.items():
        for entry in entries:
            path = directory / entry
            if not path.exists():
                problems.append(
                    f"{directory.relative_to(DEPLOY.parent)}/kustomization.yaml lists {entry}: no such file"
                )
            elif path.is_file():
                claimed.setdefault(path.resolve(), []).append(directory)
    for path in files:
        owners = claimed.get(path.resolve(), [])
        if len(owners) != 1:
            problems.append(f"{path.relative_to(DEPLOY.parent)} is listed by {len(owners)} kustomization.yaml files")
    return problems


def kustomization_key_problems(kustomization: Doc) -> list[str]:
    problems = [
        f"uses {key}, which this test does not render" for key in sorted(set(kustomization) - KUSTOMIZATION_KEYS)
    ]
    if (
        kustomization.get("apiVersion") != "kustomize.config.k8s.io/v1beta1"
        or kustomization.get("kind") != "Kustomization"
    ):
        problems.append("is not a kustomize.config.k8s.io/v1beta1 Kustomization")
    return problems


def image_problems(kustomization: Doc, docs: list[Doc]) -> list[str]:
    """Every image has a pinned tag in the Kustomization's images, and the files carry the same tag."""
    problems = []
    images = {i["name"]: i for i in kustomization.get("images", [])}
    for image in {str(c.get("image")) for c in containers_anywhere(docs)}:
        entry = images.get(image_name(image))
        if entry is None:
            problems.append(f"{image}: not in the Kustomization's images")
            continue
        tag = str(entry.get("newTag", ""))
        if not tag or tag == "latest":
            problems.append(f"{image}: the Kustomization pins no tag (or latest)")
        if not image.endswith(f":{tag}"):
            problems.append(f"{image}: the file's tag differs from the Kustomization's {tag}")
    return problems


def reference_problems(docs: list[Doc], documented: dict[str, set[str]]) -> list[str]:
    """ConfigMaps, Secrets and service accounts that pods use exist (Secrets: created as the docs say)."""
    problems = []
    configmaps = {d["metadata"]["name"]: d for d in of_kind(docs, "ConfigMap")}
    accounts = {d["metadata"]["name"] for d in of_kind(docs, "ServiceAccount")}
    secrets = {
        d["metadata"]["name"]: set(d.get("data", {})) | set(d.get("stringData", {})) for d in of_kind(docs, "Secret")
    }
    secrets.update(documented)
    for template in pod_templates(docs):
        where = template.where
        account = template.spec.get("serviceAccountName")
        if account and account not in accounts:
            problems.append(f"{where}: service account {account} does not exist")
        for container in template.containers:
            for source in container.get("envFrom", []):
                if "configMapRef" in source and source["configMapRef"]["name"] not in configmaps:
                    problems.append(f"{where}: ConfigMap {source['configMapRef']['name']} does not exist")
                if "secretRef" in source:
                    name = source["secretRef"]["name"]
                    if name not in secrets:
                        problems.append(f"{where}: Secret {name} is neither here nor created in docs/kubernetes.md")
                    elif not REQUIRED_SECRET_KEYS.get(name, set()) <= secrets[name]:
                        missing = sorted(REQUIRED_SECRET_KEYS[name] - secrets[name])
                        problems.append(f"{where}: the docs create Secret {name} without {missing}")
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    name, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
                    if key not in secrets.get(name, set()):
                        problems.append(f"{where}: Secret {name} with key {key} is not created anywhere")
                if "configMapKeyRef" in ref:
                    name, key = ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"]
                    if key not in configmaps.get(name, {}).get("data", {}):
                        problems.append(f"{where}: ConfigMap {name} has no key {key}")
    return problems


def selector_problems(docs: list[Doc]) -> list[str]:
    """Services, disruption budgets, network policies and Deployments select the pods they are for."""
    problems = []
    templates = pod_templates(docs)
    for deployment in of_kind(docs, "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        if not matches(selector, deployment["spec"]["template"]["metadata"]["labels"]):
            problems.append(f"Deployment/{deployment['metadata']['name']}: its selector misses its own pods")
    for kind, path in (("Service", ("spec", "selector")), ("PodDisruptionBudget", ("spec", "selector", "matchLabels"))):
        for doc in of_kind(docs, kind):
            selector = doc
            for key in path:
                selector = selector[key]
            if not any(matches(selector, t.labels) for t in templates):
                problems.append(f"{kind}/{doc['metadata']['name']}: selects no pods")
    for service in of_kind(docs, "Service"):
        selected = [t for t in templates if matches(service["spec"]["selector"], t.labels)]
        ports = {p.get("name") for t in selected for c in t.spec["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            if isinstance(port.get("targetPort"), str) and port["targetPort"] not in ports:
                problems.append(f"Service/{service['metadata']['name']}: no container port named {port['targetPort']}")
    for policy in of_kind(docs, "NetworkPolicy"):
        selectors = [policy["spec"]["podSelector"]]
        for rule in policy["spec"].get("ingress", []):
            selectors += [peer["podSelector"] for peer in rule.get("from", []) if "podSelector" in peer]
        for selector in selectors:
            labels = selector.get("matchLabels", {})
            if not labels or "matchExpressions" in selector:
                problems.append(f"NetworkPolicy/{policy['metadata']['name']}: {selector} is not a plain label selector")
            elif not any(matches(labels, t.labels) for t in templates):
                problems.append(f"NetworkPolicy/{policy['metadata']['name']}: {labels} selects no pods")
    return problems


def security_problems(docs: list[Doc]) -> list[str]:
    """Every pod unprivileged as the restricted Pod Security Standard asks, as the images' user, with no token."""
    problems = []
    for template in pod_templates(docs):
        where, spec = template.where, template.spec
        pod = spec.get("securityContext", {})
        if pod.get("runAsNonRoot") is not True or pod.get("runAsUser") != APP_UID or pod.get("runAsGroup") != APP_UID:
            problems.append(f"{where}: not runAsNonRoot as uid/gid {APP_UID}")
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: no RuntimeDefault seccomp profile")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: mounts a service account token")
        if any(spec.get(key) for key in ("hostNetwork", "hostPID", "hostIPC")):
            problems.append(f"{where}: shares a host namespace")
        if any("hostPath" in volume for volume in spec.get("volumes", [])):
            problems.append(f"{where}: mounts a host path")
        for container in template.containers:
            name = f"{where} container {container['name']}"
            context = container.get("securityContext", {})
            if context.get("allowPrivilegeEscalation") is not False or context.get("privileged"):
                problems.append(f"{name}: may escalate privileges")
            if context.get("capabilities", {}).get("drop") != ["ALL"] or context.get("capabilities", {}).get("add"):
                problems.append(f"{name}: does not drop all capabilities")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: the root file system is writable")
            if context.get("runAsUser", APP_UID) != APP_UID or context.get("runAsNonRoot", True) is not True:
                problems.append(f"{name}: overrides the user")
            resources = container.get("resources", {})
            if not resources.get("requests") or "memory" not in resources.get("limits", {}):
                problems.append(f"{name}: no resource requests or no memory limit")
    for doc in docs:
        if doc["kind"] == "Secret":
            problems.append(f"Secret/{doc['metadata']['name']}: Secrets are created by the operator, never committed")
    for key, value in configmap_data(docs).items():
        if re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|DATABASE_URL|BROKER_URL", key) or "@" in value:
            problems.append(f"ConfigMap finetuning-config: {key} looks secret; it belongs in a Secret")
    return problems


def api_problems(docs: list[Doc]) -> list[str]:
    """The API's probes hit its health routes, it does not migrate on start, and its shutdown fits the grace."""
    problems = []
    routes = {getattr(route, "path", None) for route in health.router.routes}
    template = next(t for t in pod_templates(docs) if t.where == "Deployment/finetuning-api")
    api = next(c for c in template.spec["containers"] if c["name"] == "api")
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
    for probe, path in expected.items():
        get = api.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or path not in routes:
            problems.append(f"the API's {probe} is not GET {path} (a route of api/routes/health.py)")
        if ports.get(get.get("port")) != 8000:
            problems.append(f"the API's {probe} does not reach port 8000, where docker/api-entrypoint.sh serves")
    # /readyz: the database check within CHECK_TIMEOUT_S, then the broker's within twice that
    if api.get("readinessProbe", {}).get("timeoutSeconds", 1) < 3 * health.CHECK_TIMEOUT_S:
        problems.append("the API's readiness probe times out before /readyz can answer")
    if "command" in api or "args" in api:
        problems.append("the API container replaces the image's entrypoint (docker/api-entrypoint.sh)")
    env = template.env(api)
    if env.get("MIGRATE_ON_START") != "0":
        problems.append("the API migrates on start (set MIGRATE_ON_START=0: the Job migrates)")
    grace = template.spec.get("terminationGracePeriodSeconds", 30)
    stop = 5 + float(env.get("API_GRACEFUL_SHUTDOWN_SECONDS", "10"))
    if grace <= stop:
        problems.append(f"the API's terminationGracePeriodSeconds {grace} is shorter than its shutdown ({stop} s)")
    if not template.spec.get("initContainers"):
        problems.append("the API does not wait for the migrated schema")
    job = one(docs, "Job", "finetuning-migrate")["spec"]["template"]["spec"]["containers"][0]
    if job.get("command") != ["finetuning-admin", "db", "upgrade"]:
        problems.append("the migration Job does not run finetuning-admin db upgrade")
    return problems


def settings_from(env: dict[str, str]) -> ServiceSettings:
    """The settings a pod with this environment gets (read from the environment, as the service reads them)."""
    outside = {k: v for k, v in os.environ.items() if not k.startswith("FINETUNING_")}
    with mock.patch.dict(os.environ, {**outside, **env}, clear=True):
        return ServiceSettings()


def settings_problems(docs: list[Doc]) -> list[str]:
    """Every FINETUNING_* name is a setting of jobcore/settings.py and every pod's values parse."""
    problems = []
    fields = {f"FINETUNING_{name.upper()}" for name in ServiceSettings.model_fields}
    for template in pod_templates(docs):
        for container in template.containers:
            env = template.env(container)
            names = {n for n in env if n.startswith("FINETUNING_")}
            for name in sorted(names - fields):
                problems.append(f"{template.where}: {name} is not a setting (jobcore/settings.py)")
            try:
                settings_from(env)
            except ValueError as exc:
                problems.append(f"{template.where}: the settings do not parse: {exc}")
    return problems


def worker_problems(docs: list[Doc], doc_text: str) -> list[str]:
    """One Deployment per queue, each queue in the docs, the default one served, the grace beyond the worker's."""
    problems = []
    config = configmap_data(docs)
    default_grace = ServiceSettings.model_fields["shutdown_grace_seconds"].default
    queues: dict[str, str] = {}
    for pool in worker_pools(docs):
        worker = next(c for c in pool.spec["containers"] if c["name"] == "worker")
        env = pool.env(worker)
        explicit = {e["name"] for e in worker.get("env", [])}
        queue = env.get("FINETUNING_DEFAULT_QUEUE", "")
        if "FINETUNING_DEFAULT_QUEUE" not in explicit:
            problems.append(f"{pool.where}: does not name its queue (FINETUNING_DEFAULT_QUEUE in its env)")
        if queue in queues:
            problems.append(f"{pool.where}: queue {queue} is also {queues[queue]}'s")
        queues[queue] = pool.where
        if pool.labels.get(QUEUE_LABEL) != queue or pool.owner["metadata"]["labels"].get(QUEUE_LABEL) != queue:
            problems.append(f"{pool.where}: its {QUEUE_LABEL} labels are not its queue {queue}")
        if f"`{queue}`" not in doc_text:
            problems.append(f"{pool.where}: queue {queue} is not in docs/kubernetes.md")
        if "command" in worker or "args" in worker:
            problems.append(f"{pool.where}: replaces the image's entrypoint (docker/worker-entrypoint.sh)")
        if "livenessProbe" in worker:
            problems.append(f"{pool.where}: a liveness probe through the broker restarts workers in a Redis outage")
        grace = float(env.get("FINETUNING_SHUTDOWN_GRACE_SECONDS", default_grace))
        if pool.spec.get("terminationGracePeriodSeconds", 30) < grace + SHUTDOWN_MARGIN_S:
            problems.append(
                f"{pool.where}: terminationGracePeriodSeconds is under the shutdown grace {grace} s + margin"
            )
        limits = worker.get("resources", {}).get("limits", {})
        requests = worker.get("resources", {}).get("requests", {})
        gpus = int(limits.get(GPU, 0))
        if gpus != int(requests.get(GPU, 0)):
            problems.append(f"{pool.where}: GPU requests and limits differ")
        if gpus and int(env.get("FINETUNING_GPUS_PER_JOB", "1")) != gpus:
            problems.append(f"{pool.where}: a GPU pool's jobs use all of its {gpus} GPUs (FINETUNING_GPUS_PER_JOB)")
        documented = re.search(rf"\?queue={re.escape(queue)}(?![\w-])", doc_text)
        if not gpus and not (of_kind(docs, "RayCluster") and documented):
            problems.append(f"{pool.where}: a pool without GPUs is for multi-node jobs (a RayCluster, docs on ?queue=)")
        if gpus and pool.spec.get("nodeSelector", {}).get("nvidia.com/gpu.present") != "true":
            problems.append(f"{pool.where}: does not select GPU nodes")
        strategy = pool.owner["spec"].get("strategy", {})
        if gpus and strategy.get("rollingUpdate", {}).get("maxSurge", 1) != 0 and strategy.get("type") != "Recreate":
            problems.append(f"{pool.where}: a surging rollout waits for the GPU the old pod holds")
    if config.get("FINETUNING_DEFAULT_QUEUE", "gpu") not in queues:
        problems.append("no worker Deployment consumes FINETUNING_DEFAULT_QUEUE: jobs that name no queue would wait")
    return problems


def ray_problems(docs: list[Doc], ray_pin: str | None) -> list[str]:
    """The Ray executor's address is the RayCluster's head Service and dashboard port, reachable and provisioned."""
    problems = []
    clusters = of_kind(docs, "RayCluster")
    address = configmap_data(docs).get("FINETUNING_RAY_ADDRESS")
    for cluster in clusters:
        name = cluster["metadata"]["name"]
        head = cluster["spec"]["headGroupSpec"]
        ports = {
            p.get("name"): p["containerPort"]
            for c in head["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        if address != f"http://{name}-head-svc:{ports.get('dashboard')}":
            problems.append(
                f"FINETUNING_RAY_ADDRESS {address} is not RayCluster {name}'s head Service and dashboard port"
            )
        if ports.get("dashboard") != 8265:
            problems.append(f"RayCluster {name}: the head has no dashboard port 8265 (the Ray Jobs API)")
        if head["rayStartParams"].get("dashboard-host") != "0.0.0.0":
            problems.append(f"RayCluster {name}: the dashboard answers only inside the head pod (dashboard-host)")
        if cluster["spec"].get("enableInTreeAutoscaling"):
            problems.append(
                f"RayCluster {name}: autoscaling, which Kueue's admission of the whole cluster does not follow"
            )
        if ray_pin and cluster["spec"].get("rayVersion") != ray_pin:
            problems.append(
                f"RayCluster {name}: rayVersion {cluster['spec'].get('rayVersion')} but the image has ray {ray_pin}"
            )
        for group in cluster["spec"].get("workerGroupSpecs", []):
            if not group["minReplicas"] <= group.get("replicas", 0) <= group["maxReplicas"]:
                problems.append(f"RayCluster {name} group {group['groupName']}: replicas outside min/max")
    for template in pod_templates(docs):
        if template.owner["kind"] != "RayCluster":
            continue
        for container in template.spec["containers"]:
            refs = {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
            if "finetuning-bucket" not in refs:
                problems.append(f"{template.where}: no bucket credentials (checkpoints go to the bucket)")
            if "finetuning-secrets" in refs:
                problems.append(f"{template.where}: Ray pods need no database credentials")
    # The API checks at submission that the cluster answers, and any worker may take a job with nodes > 1: each
    # has the address, and the NetworkPolicies in front of the Ray pods let each reach the Jobs API.
    heads = [t for t in pod_templates(docs) if t.owner["kind"] == "RayCluster" and t.where.endswith(" head")]
    for template in pod_templates(docs):
        component = template.labels.get("app.kubernetes.io/component")
        if component not in ("api", "worker"):
            continue
        for container in template.spec["containers"]:
            if clusters and template.env(container).get("FINETUNING_RAY_ADDRESS") != address:
                problems.append(f"{template.where}: no FINETUNING_RAY_ADDRESS (the RayCluster's)")
        for head in heads:
            if not reachable(docs, template, head, 8265):
                problems.append(f"{template.where}: a NetworkPolicy keeps it from {head.where}'s Jobs API")
    return problems


def reachable(docs: list[Doc], source: PodTemplate, target: PodTemplate, port: int) -> bool:
    """Whether ``source``'s pods may open ``port`` on ``target``'s (NetworkPolicy ingress, same namespace)."""
    policies = [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if matches(p["spec"]["podSelector"].get("matchLabels", {}), target.labels)
    ]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            peers = [
                peer["podSelector"].get("matchLabels", {}) for peer in rule.get("from", []) if "podSelector" in peer
            ]
            if (not ports or port in ports) and any(matches(peer, source.labels) for peer in peers):
                return True
    return False


def pod_requests(template: PodTemplate) -> dict[str, float]:
    """What a pod asks of the scheduler: its containers' sum, or its largest init container's if more."""
    totals: dict[str, float] = {}
    for container in template.spec["containers"]:
        for resource, value in container.get("resources", {}).get("requests", {}).items():
            totals[resource] = totals.get(resource, 0.0) + quantity(value)
    for container in template.spec.get("initContainers", []):
        for resource, value in container.get("resources", {}).get("requests", {}).items():
            totals[resource] = max(totals.get(resource, 0.0), quantity(value))
    return totals


def kueue_problems(docs: list[Doc], kueue_docs: list[Doc]) -> list[str]:
    """GPU workloads carry the LocalQueue's label; the queues and flavors refer to each other; the quota holds them."""
    problems = []
    local_queues = {q["metadata"]["name"]: q for q in of_kind(kueue_docs, "LocalQueue")}
    cluster_queues = {q["metadata"]["name"]: q for q in of_kind(kueue_docs, "ClusterQueue")}
    flavors = {f["metadata"]["name"] for f in of_kind(kueue_docs, "ResourceFlavor")}
    namespaces = {d["metadata"]["name"] for d in of_kind(docs, "Namespace")}
    usage: dict[str, dict[str, float]] = {}
    for template in pod_templates(docs):
        requests = pod_requests(template)
        queue = template.owner["metadata"].get("labels", {}).get(KUEUE_LABEL)
        if requests.get(GPU) and not queue:
            problems.append(f"{template.where}: holds GPUs outside Kueue (no {KUEUE_LABEL} label)")
        if not queue:
            continue
        if queue not in local_queues:
            problems.append(f"{template.where}: LocalQueue {queue} does not exist")
            continue
        if template.owner["kind"] != "RayCluster" and template.labels.get(KUEUE_LABEL) != queue:
            problems.append(f"{template.where}: its pods lack the {KUEUE_LABEL} label (Kueue's pod integration)")
        totals = usage.setdefault(local_queues[queue]["spec"]["clusterQueue"], {})
        for resource, amount in requests.items():
            totals[resource] = totals.get(resource, 0.0) + amount * template.replicas
    for name, local in local_queues.items():
        if local["metadata"].get("namespace") not in namespaces:
            problems.append(f"LocalQueue {name}: not in the service's namespace")
        if local["spec"]["clusterQueue"] not in cluster_queues:
            problems.append(f"LocalQueue {name}: ClusterQueue {local['spec']['clusterQueue']} does not exist")
    for name, queue in cluster_queues.items():
        selector = queue["spec"].get("namespaceSelector", {}).get("matchLabels", {})
        if not any(matches(selector, {"kubernetes.io/metadata.name": ns}) for ns in namespaces):
            problems.append(f"ClusterQueue {name}: its namespaceSelector leaves out the service's namespace")
        quota: dict[str, float] = {}
        for group in queue["spec"]["resourceGroups"]:
            for flavor in group["flavors"]:
                if flavor["name"] not in flavors:
                    problems.append(f"ClusterQueue {name}: ResourceFlavor {flavor['name']} does not exist")
                # the CRD's CEL rule: each flavor gives a quota for every covered resource, in the same order
                if [r["name"] for r in flavor["resources"]] != group["coveredResources"]:
                    problems.append(f"ClusterQueue {name}: flavor {flavor['name']} does not match coveredResources")
                for resource in flavor["resources"]:
                    quota[resource["name"]] = quota.get(resource["name"], 0.0) + quantity(resource["nominalQuota"])
        for resource, amount in usage.get(name, {}).items():
            if resource not in quota:
                problems.append(
                    f"ClusterQueue {name}: covers no {resource}, so workloads asking for it are never admitted"
                )
            elif amount > quota[resource]:
                problems.append(
                    f"ClusterQueue {name}: {resource} quota {quota[resource]:g} under the workloads' {amount:g}"
                )
    return problems


# -- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    return docs_of(rendered()[DEPLOY])


@pytest.fixture(scope="module")
def kueue() -> list[Doc]:
    return docs_of(rendered()[DEPLOY / "kueue"])


@pytest.fixture(scope="module")
def doc_text() -> str:
    return DOCS.read_text()


def ray_pin() -> str | None:
    """The Ray version the worker image gets: constraints.txt's pin, else the one installed here (from it too)."""
    found = re.search(r"^ray(?:\[[^\]]*\])?==([^\s;]+)", CONSTRAINTS.read_text(), re.MULTILINE | re.IGNORECASE)
    if found:
        return found.group(1)
    try:
        return importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return None


# -- the tests ---------------------------------------------------------------------------------------------------


def test_kustomizations_list_every_file_and_only_files_that_exist() -> None:
    listed = {
        d: yaml.safe_load((d / "kustomization.yaml").read_text()).get("resources", []) for d in kustomization_dirs()
    }
    files = [p for p in DEPLOY.rglob("*.y*ml") if p.name != "kustomization.yaml"]
    assert files, "no manifests under deploy/kubernetes"
    assert kustomization_problems(listed, files) == []
    assert set(rendered()) == {DEPLOY, DEPLOY / "kueue"}, (
        "the top-level Kustomizations changed: update the docs and this test"
    )
    for directory in kustomization_dirs():
        assert kustomization_key_problems(yaml.safe_load((directory / "kustomization.yaml").read_text())) == []


def test_images_are_pinned_and_consistent() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    raw = [doc for path in sorted({m.source for m in all_manifests()}) for doc in load_yaml_documents(path)]
    assert image_problems(kustomization, raw) == []
    names = {image_name(str(c["image"])) for c in containers_anywhere(raw)}
    assert names == {"silogen-finetuning-api", "silogen-finetuning-cuda-worker"}
    # the images' version is the project's
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert version
    assert {i["newTag"] for i in kustomization["images"]} == {version.group(1)}


def test_namespace_is_the_kustomizations() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs = docs_of(rendered()[DEPLOY])
    assert [d["metadata"]["name"] for d in of_kind(docs, "Namespace")] == [kustomization["namespace"]]
    assert all(d["metadata"].get("namespace") == kustomization["namespace"] for d in docs if is_namespaced(d))
    assert all(
        q["metadata"]["namespace"] == kustomization["namespace"]
        for q in of_kind(docs_of(rendered()[DEPLOY / "kueue"]), "LocalQueue")
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("manifest", all_manifests(), ids=lambda m: m.label)
def test_manifest_matches_the_api_schema(manifest: Manifest, version: str) -> None:
    assert schema_problems(manifest.doc, version) == []


def test_every_kind_is_validated() -> None:
    """No object slips through as an unknown kind: each is a core kind or a vendored CRD's."""
    kinds = {type_key(m.doc) for m in all_manifests()}
    assert {"ray.io/v1/RayCluster", "kueue.x-k8s.io/v1beta1/ClusterQueue", "kueue.x-k8s.io/v1beta1/LocalQueue"} <= kinds
    assert {"apps/v1/Deployment", "batch/v1/Job", "v1/Service", "v1/ConfigMap"} <= kinds


def test_references_resolve(base: list[Doc], doc_text: str) -> None:
    documented = documented_secrets(doc_text)
    assert set(REQUIRED_SECRET_KEYS) <= set(documented), "docs/kubernetes.md must create every Secret the pods read"
    assert reference_problems(base, documented) == []


def test_selectors_select(base: list[Doc]) -> None:
    assert selector_problems(base) == []


def test_containers_are_unprivileged(base: list[Doc]) -> None:
    assert security_problems(base) == []


def test_api_probes_migration_and_shutdown(base: list[Doc]) -> None:
    assert api_problems(base) == []
    # the switch the API's environment uses is the entrypoint's
    assert '"${MIGRATE_ON_START:-1}" != "0"' in (REPO / "docker" / "api-entrypoint.sh").read_text()


def test_settings_are_real_and_parse(base: list[Doc]) -> None:
    assert settings_problems(base) == []


def test_worker_pools(base: list[Doc], doc_text: str) -> None:
    assert worker_problems(base, doc_text) == []
    queues = {p.labels[QUEUE_LABEL] for p in worker_pools(base)}
    assert {"gpu", "gpu-large", "ray"} <= queues


def test_ray_cluster_is_the_ray_executors(base: list[Doc]) -> None:
    assert ray_problems(base, ray_pin()) == []


def test_kueue_quota_holds_the_gpu_workloads(base: list[Doc], kueue: list[Doc]) -> None:
    assert kueue_problems(base, kueue) == []


def test_migration_job_then_api_init_container(base: list[Doc], tmp_path: Path) -> None:
    """The Job's command migrates a database; the API's init container waits until it has, then lets the API start."""
    api = one(base, "Deployment", "finetuning-api")["spec"]["template"]["spec"]
    wait = api["initContainers"][0]
    assert wait["command"][:2] == ["python", "-c"]
    job = one(base, "Job", "finetuning-migrate")["spec"]["template"]["spec"]["containers"][0]
    env = {
        **os.environ,
        "FINETUNING_DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
        "SCHEMA_WAIT_SECONDS": "0",
        "PYTHONPATH": str(REPO),
    }

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)

    before = run([sys.executable, "-c", wait["command"][2]])
    assert before.returncode != 0, before.stderr
    assert "finetuning-migrate" in before.stderr
    executable = Path(sys.executable).parent / job["command"][0]
    migrated = run([str(executable), *job["command"][1:]])
    assert migrated.returncode == 0, migrated.stderr
    after = run([sys.executable, "-c", wait["command"][2]])
    assert after.returncode == 0, after.stderr


def test_docs_link_and_walk_through(doc_text: str) -> None:
    assert "kubectl apply -k deploy/kubernetes" in doc_text
    assert "docs/kubernetes.md" in (REPO / "docs" / "deployment.md").read_text()
    assert "docs/kubernetes.md" in (REPO / "README.md").read_text()
    for name in ("FINETUNING_RAY_ADDRESS", "FINETUNING_SHUTDOWN_GRACE_SECONDS", "/healthz", "/readyz", KUEUE_LABEL):
        assert name in doc_text


def test_kubectl_kustomize_renders_the_same() -> None:
    """Where kubectl is installed, its Kustomize renders what this test validates (it is not a dependency)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the rendering here is checked only against the keys it implements")

    def key(doc: Doc) -> tuple[str, str, str]:
        return (type_key(doc), str(doc["metadata"].get("namespace")), doc["metadata"]["name"])

    for directory, manifests in rendered().items():
        output = subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=60
        )
        theirs = {key(d): d for d in yaml.safe_load_all(output.stdout) if d}
        ours = {key(m.doc): m.doc for m in manifests}
        assert theirs == ours


# -- each check fails on a broken copy ----------------------------------------------------------------------------

DELETE = object()
# shorthands at the start of a path
PREFIXES = {
    "POD": "spec template spec",
    "CONTAINER": "spec template spec containers 0",
    "RAYPOD": "spec workerGroupSpecs 0 template spec",
}


def mutated(doc: Doc, path: str, value: Any) -> Doc:
    """A copy of ``doc`` with the field at ``path`` (keys and list indices, space-separated) set or deleted."""
    doc = copy.deepcopy(doc)
    first, _, rest = path.partition(" ")
    keys: list[Any] = [int(k) if k.isdigit() else k for k in f"{PREFIXES.get(first, first)} {rest}".split()]
    node = doc
    for key in keys[:-1]:
        node = node[key]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


def broken(docs: list[Doc], target: str, path: str, value: Any) -> list[Doc]:
    kind, name = target.split("/")
    return [mutated(d, path, value) if d is one(docs, kind, name) else d for d in docs]


# (what breaks, the object, the field, its new value): the schema must reject each
SCHEMA_BREAKS: list[tuple[str, str, str, Any]] = [
    ("unknown container field", "Deployment/finetuning-api", "CONTAINER livenesProbe", {}),
    ("replicas as text", "Deployment/finetuning-api", "spec replicas", "two"),
    ("port as text", "Service/finetuning-api", "spec ports 0 port", "http"),
    ("unknown Job field", "Job/finetuning-migrate", "spec backofLimit", 3),
    ("worker group without a name", "RayCluster/finetuning-ray", "spec workerGroupSpecs 0 groupName", DELETE),
    ("unknown RayCluster field", "RayCluster/finetuning-ray", "spec autoscaling", True),
    ("replicas as text in Ray", "RayCluster/finetuning-ray", "spec workerGroupSpecs 0 maxReplicas", "four"),
    ("unknown field in a Ray pod", "RayCluster/finetuning-ray", "RAYPOD containers 0 imagePullPolicyy", "Always"),
    ("bad metadata in a RayCluster", "RayCluster/finetuning-ray", "metadata labels", ["a"]),
    ("unknown queueing strategy", "ClusterQueue/finetuning", "spec queueingStrategy", "FIFO"),
    ("ClusterQueue name not a name", "LocalQueue/finetuning", "spec clusterQueue", "Not_A_Name"),
    (
        "too many node labels",
        "ResourceFlavor/finetuning-nvidia-gpu",
        "spec nodeLabels",
        {str(i): "x" for i in range(9)},
    ),
]


@pytest.mark.parametrize(("what", "target", "path", "value"), SCHEMA_BREAKS, ids=[b[0] for b in SCHEMA_BREAKS])
def test_schema_catches(what: str, target: str, path: str, value: Any) -> None:
    doc = one([m.doc for m in all_manifests()], *target.split("/"))
    assert schema_problems(doc, KUBERNETES_VERSIONS[-1]) == []
    assert schema_problems(mutated(doc, path, value), KUBERNETES_VERSIONS[-1]), f"{what} passed the schema"


# (the check, what breaks, the object, the field, its new value): the check must say so
CHECK_BREAKS: list[tuple[str, str, str, str, Any]] = [
    (
        "references",
        "a Secret's name",
        "Deployment/finetuning-api",
        "CONTAINER envFrom 1 secretRef name",
        "finetuning-secret",
    ),
    (
        "references",
        "a ConfigMap",
        "Deployment/finetuning-worker-gpu",
        "CONTAINER envFrom 0 configMapRef name",
        "config",
    ),
    ("references", "a service account", "Job/finetuning-migrate", "POD serviceAccountName", "default-sa"),
    ("selectors", "a Service's selector", "Service/finetuning-api", "spec selector app.kubernetes.io/component", "apl"),
    ("selectors", "a Service's target port", "Service/finetuning-api", "spec ports 0 targetPort", "web"),
    (
        "selectors",
        "a Deployment's selector",
        "Deployment/finetuning-worker-gpu",
        f"spec selector matchLabels {QUEUE_LABEL}",
        "x",
    ),
    (
        "selectors",
        "a NetworkPolicy open to all",
        "NetworkPolicy/finetuning-ray",
        "spec ingress 1 from 0 podSelector",
        {},
    ),
    (
        "selectors",
        "a NetworkPolicy's peers",
        "NetworkPolicy/finetuning-ray",
        "spec podSelector matchLabels ray.io/cluster",
        "x",
    ),
    ("security", "root", "Deployment/finetuning-api", "POD securityContext runAsNonRoot", False),
    (
        "security",
        "a writable root",
        "Deployment/finetuning-worker-gpu",
        "CONTAINER securityContext readOnlyRootFilesystem",
        False,
    ),
    (
        "security",
        "capabilities",
        "Job/finetuning-migrate",
        "CONTAINER securityContext capabilities",
        {"add": ["NET_ADMIN"]},
    ),
    ("security", "an init container", "Deployment/finetuning-api", "POD initContainers 0 securityContext", DELETE),
    ("security", "a Ray pod's user", "RayCluster/finetuning-ray", "RAYPOD securityContext runAsUser", 0),
    ("security", "a token", "Deployment/finetuning-worker-ray", "POD automountServiceAccountToken", True),
    (
        "security",
        "a secret in the ConfigMap",
        "ConfigMap/finetuning-config",
        "data FINETUNING_DATABASE_URL",
        "x://u:p@db",
    ),
    ("api", "the liveness path", "Deployment/finetuning-api", "CONTAINER livenessProbe httpGet path", "/health"),
    ("api", "the readiness path", "Deployment/finetuning-api", "CONTAINER readinessProbe httpGet path", "/healthz"),
    ("api", "the readiness timeout", "Deployment/finetuning-api", "CONTAINER readinessProbe timeoutSeconds", 2),
    ("api", "the probes' port", "Deployment/finetuning-api", "CONTAINER livenessProbe httpGet port", "metrics"),
    ("api", "migrating on start", "Deployment/finetuning-api", "CONTAINER env 0", DELETE),
    ("api", "the migration command", "Job/finetuning-migrate", "CONTAINER command", ["alembic", "upgrade", "head"]),
    ("settings", "a setting's name", "ConfigMap/finetuning-config", "data FINETUNING_ARTEFACT_ROOT", "s3://x/y"),
    ("settings", "a setting's value", "ConfigMap/finetuning-config", "data FINETUNING_ALLOWED_ROOTS", "[s3://x"),
    ("settings", "the executor", "ConfigMap/finetuning-config", "data FINETUNING_EXECUTOR", "kubernetes"),
    ("workers", "the worker's grace", "Deployment/finetuning-worker-gpu", "POD terminationGracePeriodSeconds", 60),
    ("workers", "a queue not in the docs", "Deployment/finetuning-worker-gpu-large", "CONTAINER env 0 value", "h100"),
    ("workers", "the default queue's pool", "ConfigMap/finetuning-config", "data FINETUNING_DEFAULT_QUEUE", "a100"),
    ("workers", "GPUs per job", "Deployment/finetuning-worker-gpu-large", "CONTAINER env 1 value", "2"),
    ("workers", "a worker liveness probe", "Deployment/finetuning-worker-gpu", "CONTAINER livenessProbe", {"exec": {}}),
    (
        "workers",
        "a CPU pool without Ray",
        "Deployment/finetuning-worker-gpu",
        "CONTAINER resources",
        {"requests": {"cpu": 1}},
    ),
    ("workers", "a surging GPU rollout", "Deployment/finetuning-worker-gpu", "spec strategy rollingUpdate maxSurge", 1),
    ("ray", "the API kept from Ray", "NetworkPolicy/finetuning-ray", "spec ingress 1 from 0", DELETE),
    (
        "ray",
        "a worker without the address",
        "Deployment/finetuning-worker-gpu",
        "CONTAINER env 0",
        {"name": "FINETUNING_RAY_ADDRESS", "value": ""},
    ),
    ("ray", "the Ray address", "ConfigMap/finetuning-config", "data FINETUNING_RAY_ADDRESS", "http://x-head-svc:8265"),
    (
        "ray",
        "the dashboard host",
        "RayCluster/finetuning-ray",
        "spec headGroupSpec rayStartParams dashboard-host",
        "::1",
    ),
    ("ray", "no bucket credentials on Ray", "RayCluster/finetuning-ray", "RAYPOD containers 0 envFrom 1", DELETE),
    (
        "ray",
        "database credentials on Ray",
        "RayCluster/finetuning-ray",
        "RAYPOD containers 0 envFrom 0",
        {"secretRef": {"name": "finetuning-secrets"}},
    ),
    ("kueue", "the Kueue label", "RayCluster/finetuning-ray", f"metadata labels {KUEUE_LABEL}", DELETE),
    (
        "kueue",
        "a pod's Kueue label",
        "Deployment/finetuning-worker-gpu",
        f"spec template metadata labels {KUEUE_LABEL}",
        DELETE,
    ),
    ("kueue", "more GPUs than the quota", "RayCluster/finetuning-ray", "spec workerGroupSpecs 0 replicas", 4),
]

# (what breaks, the Kueue object, the field, its new value)
KUEUE_BREAKS: list[tuple[str, str, str, Any]] = [
    ("a flavor's resources", "ClusterQueue/finetuning", "spec resourceGroups 0 flavors 0 resources 1", DELETE),
    ("a flavor's name", "ClusterQueue/finetuning", "spec resourceGroups 1 flavors 0 name", "h100"),
    ("the namespaces", "ClusterQueue/finetuning", "spec namespaceSelector matchLabels", {"team": "x"}),
    ("the LocalQueue's ClusterQueue", "LocalQueue/finetuning", "spec clusterQueue", "other"),
    ("the GPU quota", "ClusterQueue/finetuning", "spec resourceGroups 1 flavors 0 resources 0 nominalQuota", 8),
]


def run_check(check: str, docs: list[Doc], kueue_docs: list[Doc], doc_text: str) -> list[str]:
    checks: dict[str, Callable[[], list[str]]] = {
        "references": lambda: reference_problems(docs, documented_secrets(doc_text)),
        "selectors": lambda: selector_problems(docs),
        "security": lambda: security_problems(docs),
        "api": lambda: api_problems(docs),
        "settings": lambda: settings_problems(docs),
        "workers": lambda: worker_problems(docs, doc_text),
        "ray": lambda: ray_problems(docs, ray_pin()),
        "kueue": lambda: kueue_problems(docs, kueue_docs),
    }
    return checks[check]()


@pytest.mark.parametrize(("check", "what", "target", "path", "value"), CHECK_BREAKS, ids=[b[1] for b in CHECK_BREAKS])
def test_check_catches(
    check: str, what: str, target: str, path: str, value: Any, base: list[Doc], kueue: list[Doc], doc_text: str
) -> None:
    assert run_check(check, base, kueue, doc_text) == []
    assert run_check(check, broken(base, target, path, value), kueue, doc_text), f"{what}: the {check} check missed it"


@pytest.mark.parametrize(("what", "target", "path", "value"), KUEUE_BREAKS, ids=[b[0] for b in KUEUE_BREAKS])
def test_kueue_check_catches(what: str, target: str, path: str, value: Any, base: list[Doc], kueue: list[Doc]) -> None:
    assert kueue_problems(base, kueue) == []
    assert kueue_problems(base, broken(kueue, target, path, value)), f"{what}: the kueue check missed it"


def test_kustomization_checks_catch() -> None:
    listed = {
        d: yaml.safe_load((d / "kustomization.yaml").read_text()).get("resources", []) for d in kustomization_dirs()
    }
    files = [p for p in DEPLOY.rglob("*.y*ml") if p.name != "kustomization.yaml"]
    unlisted = {d: [e for e in entries if e != "worker-gpu-large.yaml"] for d, entries in listed.items()}
    assert kustomization_problems(unlisted, files), "a file no Kustomization lists passed"
    missing = {d: [*entries, "worker-h100.yaml"] if d == DEPLOY else entries for d, entries in listed.items()}
    assert kustomization_problems(missing, files), "a listed file that does not exist passed"
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization_key_problems({**kustomization, "patches": []}), "a key the renderer ignores passed"
    raw = [
        doc
        for path in sorted(DEPLOY.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_yaml_documents(path)
    ]
    latest = {**kustomization, "images": [{**i, "newTag": "latest"} for i in kustomization["images"]]}
    assert image_problems(latest, raw), "an image tagged latest passed"
    assert image_problems({**kustomization, "images": kustomization["images"][:1]}, raw), (
        "an image without a pinned tag passed"
    )


def test_documented_secrets_parser() -> None:
    text = (
        "kubectl -n x create secret generic a \\\n  --from-literal=K1='v' \\\n  --from-literal=K2=\"$(cmd)\"\n"
        "ls --from-literal=K3=v\n"
    )
    assert documented_secrets(text) == {"a": {"K1", "K2"}}
