"""Kubernetes manifests for a model version's image: a Deployment and a Service, optionally
a HorizontalPodAutoscaler and a PodDisruptionBudget.

The pods run the image's `serve` mode with readiness and liveness probes on `/ping`,
resource requests and limits, Prometheus scrape annotations for `/metrics`, a non-root
read-only root file system, and the bearer token (if any) from a Secret, never inline. A
preStop pause lets the Service stop routing to a pod before it gets SIGTERM; the endpoint
then finishes the requests in flight and exits 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .. import shapes
from ..config import ENDPOINT_TOKEN_ENV
from ..errors import InvalidInput
from .context import check_image_reference
from .layout import PORT, USER_ID

PRE_STOP_SECONDS = 5
MANIFEST_SUFFIXES = (".yaml", ".yml")  # what kubectl apply -f takes as a YAML file
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class KubernetesOptions:
    image: str = ""  # empty: the tag `sparkserve build` gives the version by default
    replicas: int = 2
    namespace: str | None = None
    token_secret: str | None = None  # a Secret holding the token under the key `token`
    min_replicas: int | None = None  # with max_replicas: a HorizontalPodAutoscaler
    max_replicas: int | None = None
    cpu_target_percent: int = 70
    disruption_budget: bool = False  # a PodDisruptionBudget keeping one pod up
    cpu_request: str = "500m"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"
    host_port: int | None = None  # single-node clusters (kind, podman kube play) only

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> KubernetesOptions:
        """Options from what a face sends (openapi.yaml's KubernetesSettings): `autoscale`
        is `MIN-MAX`, such as 2-10."""
        shapes.check("KubernetesSettings", settings)
        given = {name: value for name, value in settings.items() if value is not None}
        autoscale = str(given.pop("autoscale", "")).strip()
        if autoscale:
            low, _, high = autoscale.partition("-")
            if not (low.strip().isdigit() and high.strip().isdigit()):
                raise InvalidInput(
                    f"autoscale {autoscale!r}: give MIN-MAX, such as 2-10.", field="autoscale"
                )
            given.update(min_replicas=int(low), max_replicas=int(high))
        return cls(**given)


def resource_name(name: str, version: int) -> str:
    """A DNS-1123 label from a model name and version: `churn-v3`."""
    base = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:50] or "model"
    label = f"{base}-v{version}"
    if not _DNS_LABEL.fullmatch(label):
        raise InvalidInput(f"Cannot make a Kubernetes name from model {name!r}.")
    return label


def manifests(name: str, version: int, options: KubernetesOptions) -> list[dict[str, Any]]:
    _check(options)
    app = resource_name(name, version)
    labels = {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": "model-endpoint",
        "app.kubernetes.io/managed-by": "jupyter_sparkserve",
    }
    metadata: dict[str, Any] = {"name": app, "labels": labels}
    if options.namespace:
        metadata["namespace"] = options.namespace
    documents = [
        _deployment(metadata, labels, name, version, options),
        _service(metadata, labels),
    ]
    if options.max_replicas is not None:
        documents.append(_autoscaler(metadata, app, options))
    if options.disruption_budget:
        documents.append(_disruption_budget(metadata, labels))
    return documents


class _PlainDumper(yaml.SafeDumper):
    """Writes shared values (the labels) out each time: no `&id001` anchors for a reader."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(documents: list[dict[str, Any]]) -> str:
    return yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False)


def _check(options: KubernetesOptions) -> None:
    if not options.image.strip():
        raise InvalidInput(
            "A Kubernetes Deployment needs an image: build one, then pass it.", field="image"
        )
    check_image_reference(options.image, "The image", digest=True, name="image")
    if options.replicas < 1:
        raise InvalidInput("replicas must be 1 or more.", field="replicas")
    if (options.min_replicas is None) != (options.max_replicas is None):
        raise InvalidInput(
            "Autoscaling needs both the minimum and the maximum replicas.", field="autoscale"
        )
    low, high = options.min_replicas, options.max_replicas
    if low is not None and high is not None and not 1 <= low <= high:
        raise InvalidInput(
            "Autoscaling needs 1 <= minimum replicas <= maximum replicas.", field="autoscale"
        )
    if options.namespace is not None and not _DNS_LABEL.fullmatch(options.namespace):
        raise InvalidInput(
            f"Invalid namespace {options.namespace!r}: a DNS-1123 label.", field="namespace"
        )
    if options.token_secret is not None and not _DNS_LABEL.fullmatch(options.token_secret):
        raise InvalidInput(
            f"Invalid Secret name {options.token_secret!r}: a DNS-1123 label.",
            field="token_secret",
        )


def _deployment(
    metadata: dict[str, Any],
    labels: dict[str, str],
    name: str,
    version: int,
    options: KubernetesOptions,
) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/ping", "port": "http"}}
    port: dict[str, Any] = {"name": "http", "containerPort": PORT, "protocol": "TCP"}
    if options.host_port is not None:  # on this node's loopback only, like every endpoint
        port.update(hostPort=options.host_port, hostIP="127.0.0.1")
    container: dict[str, Any] = {
        "name": "endpoint",
        "image": options.image,
        "args": ["serve"],
        "ports": [port],
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 60},
        "resources": {
            "requests": {"cpu": options.cpu_request, "memory": options.memory_request},
            "limits": {"memory": options.memory_limit},
        },
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if options.token_secret:
        container["env"] = [
            {
                "name": ENDPOINT_TOKEN_ENV,
                "valueFrom": {"secretKeyRef": {"name": options.token_secret, "key": "token"}},
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **metadata,
            "annotations": {"sparkserve.io/model": f"{name}:{version}"},
        },
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": _selector(labels)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": PRE_STOP_SECONDS + 30,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def _service(metadata: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "selector": _selector(labels),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _autoscaler(metadata: dict[str, Any], app: str, options: KubernetesOptions) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "minReplicas": options.min_replicas,
            "maxReplicas": options.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": options.cpu_target_percent,
                        },
                    },
                }
            ],
        },
    }


def _disruption_budget(metadata: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata,
        "spec": {
            "minAvailable": 1,
            "selector": {"matchLabels": _selector(labels)},
        },
    }


def _selector(labels: dict[str, str]) -> dict[str, str]:
    return {"app.kubernetes.io/name": labels["app.kubernetes.io/name"]}
