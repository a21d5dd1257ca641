"""Kubernetes manifests, validated offline.

Core resources go through ``kubernetes-validate`` (the API's OpenAPI schemas, strict: unknown
fields fail). KEDA's custom resources are validated against models generated from KEDA's
published CRDs (``cloudcoil-models-keda``) when that package is installed, with unknown fields
rejected, and always field-checked against what the rest of the project says (topics, partitions,
consumer group, Secret keys).
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy.generate import DEPLOY
from driftscope.settings import KafkaSettings, Settings
from schemas.topics import TOPICS

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"
FAUST_APP_ID = "driftscope"  # streams.config.StreamsConfig.app_id: the worker's consumer group
SECRET = "driftscope-secrets"
# librdkafka's sasl.mechanism -> the KEDA kafka scaler's `sasl` value
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


DOCUMENTS = _documents()
CORE = [(name, doc) for name, doc in DOCUMENTS if not doc["apiVersion"].startswith("keda.sh/")]
KEDA = [(name, doc) for name, doc in DOCUMENTS if doc["apiVersion"].startswith("keda.sh/")]


def _find(kind: str, name: str) -> dict[str, Any]:
    matches = [doc for _, doc in DOCUMENTS if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def _ids(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in docs]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    namespaced = [doc for _, doc in DOCUMENTS if doc["kind"] != "Namespace"]
    assert {doc["metadata"]["namespace"] for doc in namespaced} == {kustomization["namespace"]}


@pytest.mark.parametrize(("name", "doc"), CORE, ids=_ids(CORE))
def test_core_resource_matches_the_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_core_validation_rejects_an_unknown_field() -> None:
    worker = _find("Deployment", "driftscope-worker")
    broken = {**worker, "spec": {**worker["spec"], "replicass": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _keda_model(kind: str) -> Any:
    keda = pytest.importorskip("cloudcoil.models.keda.v1alpha1", reason="pip install cloudcoil-models-keda")
    return getattr(keda, kind)


def _strict_crd_check(doc: dict[str, Any]) -> None:
    """Validate with the CRD-generated model, then insist nothing was silently dropped."""
    model = _keda_model(doc["kind"])
    parsed = model.model_validate(doc)
    assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc


@pytest.mark.parametrize(("name", "doc"), KEDA, ids=_ids(KEDA))
def test_keda_resource_matches_the_published_crd(name: str, doc: dict[str, Any]) -> None:
    _strict_crd_check(doc)


def test_crd_check_rejects_an_unknown_field() -> None:
    scaled = _find("ScaledObject", "driftscope-worker")
    with pytest.raises(AssertionError):
        _strict_crd_check({**scaled, "spec": {**scaled["spec"], "maxReplicaCont": 3}})


def test_scaled_object_scales_the_worker_on_its_consumer_lag() -> None:
    scaled = _find("ScaledObject", "driftscope-worker")["spec"]
    target = scaled["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "driftscope-worker")
    assert "replicas" not in _find("Deployment", "driftscope-worker")["spec"]  # KEDA owns it
    assert scaled["minReplicaCount"] >= 1
    assert scaled["minReplicaCount"] <= scaled["maxReplicaCount"] == TOPICS["images.raw"].partitions
    config = _find("ConfigMap", "driftscope-config")["data"]
    for trigger in scaled["triggers"]:
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["topic"] in TOPICS
        assert meta["consumerGroup"] == FAUST_APP_ID
        assert meta["bootstrapServers"] == config["DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS"]
        assert int(meta["lagThreshold"]) > 0
        assert meta["allowIdleConsumers"] == "false"
        assert meta["sasl"] == KEDA_SASL[config["DRIFTSCOPE_KAFKA__SASL_MECHANISM"]]
        assert (meta["tls"] == "enable") == config["DRIFTSCOPE_KAFKA__SECURITY_PROTOCOL"].endswith("SSL")
        _find("TriggerAuthentication", trigger["authenticationRef"]["name"])


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _secret_keys_used() -> set[str]:
    keys = set()
    for _, doc in DOCUMENTS:
        if doc["kind"] == "TriggerAuthentication":
            keys |= {ref["key"] for ref in doc["spec"]["secretTargetRef"] if ref["name"] == SECRET}
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                for item in container.get("env", []):
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    if ref and ref["name"] == SECRET:
                        keys.add(ref["key"])
    return keys


def test_secret_keys_are_documented_and_never_committed() -> None:
    assert not [doc for _, doc in DOCUMENTS if doc["kind"] == "Secret"]
    readme = (K8S / "README.md").read_text()
    for key in _secret_keys_used():
        assert f"--from-literal={key}=" in readme, f"README.md does not say how to create {key}"


@pytest.mark.parametrize("deployment", ["driftscope-worker", "driftscope-trainer"])
def test_deployment_env_is_driftscope_settings(deployment: str) -> None:
    container = _find("Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == ["driftscope-config"]
    names = set(_find("ConfigMap", "driftscope-config")["data"]) | set(_env(container))
    for name in names - {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}:  # read by fsspec/s3fs for s3:// blobs
        path = name.removeprefix("DRIFTSCOPE_").lower().split("__")
        known = KafkaSettings.model_fields if path[0] == "kafka" and len(path) == 2 else Settings.model_fields
        assert name.startswith("DRIFTSCOPE_") and path[-1] in known, f"{name} is not a driftscope setting"


def test_trainer_runs_on_a_gpu_node() -> None:
    trainer = _find("Deployment", "driftscope-trainer")["spec"]
    container = trainer["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert trainer["replicas"] == TOPICS["retrain.requests"].partitions == 1
    assert trainer["strategy"]["type"] == "Recreate"
    assert "DRIFTSCOPE_CLICKHOUSE_URL" not in _env(container)  # the trainer never reads the store


def test_worker_needs_the_store_and_no_gpu() -> None:
    container = _find("Deployment", "driftscope-worker")["spec"]["template"]["spec"]["containers"][0]
    assert _env(container)["DRIFTSCOPE_CLICKHOUSE_URL"]["valueFrom"]["secretKeyRef"]["name"] == SECRET
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert container["image"].startswith("driftscope-serve:")


def test_jobs_mount_the_generated_scripts() -> None:
    configmaps = {doc["metadata"]["name"]: doc["data"] for _, doc in DOCUMENTS if doc["kind"] == "ConfigMap"}
    for job_name, script in (("driftscope-topic-init", "create-topics.sh"),
                             ("driftscope-clickhouse-schema", "cluster-schema.sql")):
        pod = _find("Job", job_name)["spec"]["template"]["spec"]
        mounted = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        assert any(script in configmaps[name] for name in mounted), f"{job_name} does not get {script}"
        assert any(script in " ".join(c.get("command", [])) for c in pod["containers"])

