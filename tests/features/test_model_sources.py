"""Model sources beyond the Hub (issue 8, item 3): pvc://, s3://, oci:// and a shared cache claim.

Each is validated (with file:line:column), rendered into chart values, rendered by the real
helm into objects (the mini chart, which mirrors 0.1.8's initContainer, extraVolumes and
extraVolumeMounts), and installed on the sandbox, where the Deployments and claims are read
back. The sandbox's kubelet runs no init containers and mounts no volumes: its pods become
Ready whatever they hold, so what is checked there is the objects the API server got.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run
from tests.features.test_engine_fields import objects, problems
from tests.render.test_values import given_input, models
from tests.sandbox.fixtures import ClusterEnv, mini_chart_at
from vllmctl.core.errors import UsageError
from vllmctl.features import sources
from vllmctl.render.values import render

needs_helm = pytest.mark.skipif(shutil.which("helm") is None, reason="scripts/test puts helm on PATH")
DIGEST = "a" * 64


def entry(url: str, *lines: str) -> str:
    return f"- name: m\n  modelURL: {url}\n" + "".join(f"  {line}\n" for line in lines)


def spec(text: str, name: str = "m", chart_version: str = "0.1.8", **env: str) -> dict[str, Any]:
    given = given_input(VLLM_CHART_VERSION=chart_version, **env)
    found = render(models(text), given).values["servingEngineSpec"]["modelSpec"]
    return next(m for m in found if m["name"] == name)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (entry("pvc://Models/llama"), "2:13", "'Models' is not a Kubernetes claim name"),
        (entry("pvc://models/../etc"), "2:13", "may not hold empty, '.' or '..' parts"),
        (entry("pvc://models//llama"), "2:13", "may not hold empty, '.' or '..' parts"),
        (entry("pvc://models/a;b"), "2:13", "'a;b' in the path in the claim has characters"),
        (entry("s3://My_Bucket/llama"), "2:13", "'My_Bucket' is not a bucket name"),
        (entry("s3://ab"), "2:13", "'ab' is not a bucket name"),
        (entry("s3://models/a/../b"), "2:13", "may not hold empty, '.' or '..' parts"),
        (entry("oci://registry.example.com/models/granite"), "2:13", "has no tag or digest"),
        (entry("oci://registry.example.com/Models:1"), "2:13", "is not an image reference"),
        (entry("ftp://host/model"), "2:13", "uses an unsupported scheme"),
        (entry("s3://models/llama", "s3Secret: S3_Creds"), "3:13", "'S3_Creds' is not a Kubernetes Secret"),
        (entry("s3://models/llama", "s3Endpoint: minio:9000"), "3:15", "is not an S3 endpoint"),
        (entry("s3://models/llama", "s3Region: 'us east'"), "3:13", "is not a region name"),
        (entry("org/model", "cacheClaim: Cache"), "3:15", "is not a Kubernetes PersistentVolumeClaim"),
        (entry("org/model", "s3Secret: creds"), "3:13", "s3Secret is only for s3:// models; remove it"),
        (entry("oci://r.io/m:1", "s3Endpoint: http://m:9000"), "3:15", "s3Endpoint is only for s3://"),
        (entry("pvc://models/llama", "cacheClaim: cache"), "3:15", "caches nothing; remove cacheClaim"),
        (entry("pvc://models/llama", "pvcStorage: 10Gi"), "3:15", "caches nothing; remove pvcStorage"),
        (entry("org/model", "cacheClaim: cache", "pvcStorage: 10Gi"), "4:15", "give one model cache"),
    ],
)
def test_bad_sources_are_named_with_their_position(text: str, where: str, message: str) -> None:
    (problem,) = problems(text)
    assert problem.startswith(f"models.yaml:{where}:"), problem
    assert message in problem, problem


@pytest.mark.parametrize(
    "text",
    [
        entry("pvc://models"),
        entry("pvc://shared-models.v2/llama/Llama-3.1-8B_instruct/"),
        entry("s3://my-bucket"),
        entry("s3://my.bucket/org/Qwen2.5-1.5B+ft=1/"),
        entry("oci://registry.example.com:5000/models/granite:1.0"),
        entry(f"oci://quay.io/org/model@sha256:{DIGEST}"),
        entry(f"oci://quay.io/org/model:v2@sha256:{DIGEST}"),
        entry(
            "s3://models/llama",
            "s3Secret: s3-creds",
            "s3Endpoint: https://minio.example.com:9000",
            "s3Region: us-east-1",
            "cacheClaim: model-cache",
        ),
        entry("org/model", "cacheClaim: model-cache"),
    ],
)
def test_good_sources_pass(text: str) -> None:
    assert problems(text) == []


def test_the_hub_checks_skip_other_sources() -> None:
    from vllmctl.features.startup import budget
    from vllmctl.ops.memory import is_hub_repo

    for url in (
        "pvc://models/llama-70B",
        "s3://models/llama-70B",
        "oci://r.io/models/llama-70b:1",
        f"oci://r.io/models/llama-70b@sha256:{DIGEST}",
    ):
        assert not is_hub_repo(url)
        assert budget({"name": "m", "modelURL": url}, None, "VLLM_MAX_STARTUP_SECONDS").seconds == 1800


# ------------------------------------------------------------------ rendering


def test_a_pvc_source_is_mounted_read_only_and_gets_no_cache() -> None:
    found = spec(entry("pvc://shared-models/llama/3.1-8b"), chart_version="0.1.10")
    assert found["modelURL"] == "/model-source/llama/3.1-8b"
    assert found["extraVolumes"] == [
        {"name": "model-source", "persistentVolumeClaim": {"claimName": "shared-models", "readOnly": True}}
    ]
    assert found["extraVolumeMounts"] == [
        {"name": "model-source", "mountPath": "/model-source", "readOnly": True}
    ]
    for key in ("pvcStorage", "pvcAccessMode", "pvcAnnotations", "initContainer"):
        assert key not in found, key
    # The engine answers to the models.yaml name (a local path is no repo id to add).
    assert found["vllmConfig"]["extraArgs"] == ["--served-model-name", "m"]
    assert spec(entry("pvc://shared-models"))["modelURL"] == "/model-source"


def test_an_s3_source_is_fetched_into_the_model_cache_by_an_init_container() -> None:
    text = entry("s3://models/qwen/Qwen2.5-1.5B/", "s3Secret: s3-creds", "s3Region: eu-west-1")
    found = spec(text)
    target = "/data/models/s3/models/qwen/Qwen2.5-1.5B"
    assert found["modelURL"] == target
    assert found["pvcStorage"] == "50Gi"  # the chart's per-model PVC holds the copy
    init = found["initContainer"]
    assert (init["name"], init["image"], init["mountPvcStorage"]) == (
        "fetch-model",
        sources.DEFAULT_S3_IMAGE,
        True,
    )
    # Source and target are arguments of the script, never spliced into its text.
    assert init["command"][:2] == ["sh", "-c"]
    assert init["command"][3:] == ["fetch-model", "src:models/qwen/Qwen2.5-1.5B", target]
    assert "src:" not in init["command"][2] and f'[ -f "$2/{sources.DONE_MARKER}" ]' in init["command"][2]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in init["env"]}
    assert env["RCLONE_CONFIG_SRC_PROVIDER"] == "AWS" and "RCLONE_CONFIG_SRC_ENDPOINT" not in env
    assert env["RCLONE_CONFIG_SRC_REGION"] == "eu-west-1"
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}}
    assert env["AWS_SESSION_TOKEN"] == {
        "secretKeyRef": {"name": "s3-creds", "key": "AWS_SESSION_TOKEN", "optional": True}
    }
    assert "envFromSecret" not in found  # the keys reach the init container only, not vLLM


def test_the_s3_endpoint_comes_from_the_model_else_the_setting() -> None:
    def endpoint(text: str, **env: str) -> tuple[str, str | None]:
        values = {e["name"]: e.get("value") for e in spec(text, **env)["initContainer"]["env"]}
        return values["RCLONE_CONFIG_SRC_PROVIDER"], values.get("RCLONE_CONFIG_SRC_ENDPOINT")

    plain = entry("s3://models/llama")
    assert endpoint(plain, VLLM_S3_ENDPOINT="http://minio.storage.svc:9000") == (
        "Other",
        "http://minio.storage.svc:9000",
    )
    own = entry("s3://models/llama", "s3Endpoint: https://s3.example.com")
    assert endpoint(own, VLLM_S3_ENDPOINT="http://minio.storage.svc:9000")[1] == "https://s3.example.com"
    # No s3Secret: the pod's own identity (IRSA, instance role) or anonymous access.
    assert not [e for e in spec(plain)["initContainer"]["env"] if "valueFrom" in e]
    image = spec(plain, VLLM_S3_IMAGE="registry.example.com/mirror/rclone:1.72.0")["initContainer"]["image"]
    assert image == "registry.example.com/mirror/rclone:1.72.0"


def test_an_oci_source_is_copied_by_default_or_mounted_as_an_image_volume() -> None:
    text = entry(f"oci://registry.example.com/models/granite@sha256:{DIGEST}")
    copied = spec(text)
    target = f"/data/models/oci/registry.example.com/models/granite/sha256-{DIGEST}"
    assert copied["modelURL"] == target and copied["pvcStorage"] == "50Gi"
    init = copied["initContainer"]
    assert init["image"] == f"registry.example.com/models/granite@sha256:{DIGEST}"
    assert init["command"][3:] == ["copy-model", "/models", target]
    mounted = spec(text, VLLM_OCI_METHOD="image")
    assert mounted["modelURL"] == "/model-source/models"
    assert mounted["extraVolumes"] == [
        {
            "name": "model-source",
            "image": {
                "reference": f"registry.example.com/models/granite@sha256:{DIGEST}",
                "pullPolicy": "IfNotPresent",
            },
        }
    ]
    assert "pvcStorage" not in mounted and "initContainer" not in mounted
    with pytest.raises(UsageError, match=r"m: with VLLM_OCI_METHOD=image .* remove cacheClaim"):
        spec(entry("oci://r.io/m:1", "cacheClaim: cache"), VLLM_OCI_METHOD="image")


def test_a_cache_claim_replaces_the_per_model_pvc() -> None:
    hub = spec(entry("Qwen/Qwen2.5-1.5B-Instruct", "cacheClaim: model-cache"), chart_version="0.1.12")
    assert hub["modelURL"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert hub["extraVolumes"] == [
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}}
    ]
    assert hub["extraVolumeMounts"] == [{"name": "model-cache", "mountPath": "/data"}]
    # Without pvcStorage the chart sets HF_HOME=/tmp; the Hub cache is pointed at the claim.
    assert hub["env"] == [{"name": "HF_HUB_CACHE", "value": "/data/hub"}]
    assert not {"pvcStorage", "pvcAccessMode", "pvcAnnotations"} & set(hub)
    s3 = spec(entry("s3://models/llama", "cacheClaim: model-cache"))
    assert s3["initContainer"]["extraVolumeMounts"] == [{"name": "model-cache", "mountPath": "/data"}]
    assert "mountPvcStorage" not in s3["initContainer"] and "pvcStorage" not in s3


def test_the_cache_claim_setting_applies_to_models_without_their_own_cache() -> None:
    text = (
        entry("Qwen/Qwen2.5-1.5B-Instruct")
        + entry("org/own-cache", "pvcStorage: 100Gi").replace("name: m", "name: own")
        + entry("pvc://models/llama").replace("name: m", "name: local")
    )
    env = {"VLLM_MODEL_CACHE_CLAIM": "shared-cache"}
    assert spec(text, **env)["extraVolumes"][0]["persistentVolumeClaim"] == {"claimName": "shared-cache"}
    own = spec(text, "own", **env)
    assert own["pvcStorage"] == "100Gi" and "extraVolumes" not in own
    assert spec(text, "local", **env)["extraVolumes"][0]["name"] == "model-source"


def test_the_entrys_own_volumes_and_env_are_joined_with_the_sources() -> None:
    text = entry(
        "pvc://models/llama",
        "extraVolumes: [{name: scratch, emptyDir: {}}]",
        "extraVolumeMounts: [{name: scratch, mountPath: /scratch}]",
    )
    found = spec(text)
    assert [v["name"] for v in found["extraVolumes"]] == ["model-source", "scratch"]
    assert [v["mountPath"] for v in found["extraVolumeMounts"]] == ["/model-source", "/scratch"]
    own_cache = entry(
        "org/model", "cacheClaim: c", "env: [{name: HF_HUB_CACHE, value: /data/x}, {name: A, value: b}]"
    )
    assert spec(own_cache)["env"] == [
        {"name": "HF_HUB_CACHE", "value": "/data/x"},
        {"name": "A", "value": "b"},
    ]
    with pytest.raises(UsageError, match="extraVolumes has name 'model-source', which its model source uses"):
        spec(entry("pvc://models/llama", "extraVolumes: [{name: model-source, emptyDir: {}}]"))
    with pytest.raises(UsageError, match="its s3:// source needs the chart's initContainer"):
        spec(entry("s3://models/llama", "initContainer: {name: mine, image: busybox}"))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VLLM_OCI_METHOD": "mount"}, "VLLM_OCI_METHOD='mount' must be copy or image"),
        ({"VLLM_S3_ENDPOINT": "minio:9000"}, "VLLM_S3_ENDPOINT: 'minio:9000' is not an S3 endpoint"),
        ({"VLLM_MODEL_CACHE_CLAIM": "Cache"}, "VLLM_MODEL_CACHE_CLAIM: 'Cache' is not a Kubernetes"),
    ],
)
def test_bad_source_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        spec(entry("org/model"), **env)


def test_the_settings_default_image_is_the_modules() -> None:
    from vllmctl.settings import SPECS_BY_NAME

    assert SPECS_BY_NAME["s3_image"].default == sources.DEFAULT_S3_IMAGE
    assert SPECS_BY_NAME["oci_method"].default == sources.OCI_METHODS[0]


# ------------------------------------------------------------------ helm template

EVERY_SOURCE = """\
- name: local
  modelURL: pvc://shared-models/llama/3.1-8b
- name: bucket
  modelURL: s3://models/qwen/Qwen2.5-1.5B
  s3Secret: s3-creds
  s3Endpoint: http://minio.storage.svc:9000
- name: car
  modelURL: oci://registry.example.com/models/granite:1.0
- name: hub
  modelURL: Qwen/Qwen2.5-1.5B-Instruct
  cacheClaim: model-cache
"""
TEMPLATE_ENV = {"VLLM_MODEL_TAG": "v0.11.0", "VLLM_RELEASE": "rel", "VLLM_NAMESPACE": "ns"}


def pod_of(found: dict[tuple[str, str], dict[str, Any]], model: str) -> dict[str, Any]:
    pod: dict[str, Any] = found[("Deployment", f"rel-{model}-deployment-vllm")]["spec"]["template"]["spec"]
    return pod


@needs_helm
def test_helm_template_renders_each_source_into_the_pod(run: Run, models_file: Path) -> None:
    from tests.sandbox.fixtures import MINI_CHART

    models_file.write_text(EVERY_SOURCE)
    result = run(
        "template", env={**TEMPLATE_ENV, "VLLM_CHART": str(MINI_CHART), "VLLM_CHART_VERSION": "0.1.8"}
    )
    assert result.exit_code == 0, result.stderr
    found = objects(result.stdout)
    claims = {name for kind, name in found if kind == "PersistentVolumeClaim"}
    assert claims == {"rel-bucket-storage-claim", "rel-car-storage-claim"}  # none for local and hub

    local = pod_of(found, "local")
    assert "initContainers" not in local
    assert local["volumes"] == [
        {"name": "model-source", "persistentVolumeClaim": {"claimName": "shared-models", "readOnly": True}}
    ]
    engine = local["containers"][0]
    assert engine["command"][:3] == ["vllm", "serve", "/model-source/llama/3.1-8b"]
    assert engine["volumeMounts"] == [
        {"name": "model-source", "mountPath": "/model-source", "readOnly": True}
    ]
    assert {"name": "HF_HOME", "value": "/tmp"} in engine["env"]  # the chart's fallback

    bucket = pod_of(found, "bucket")
    (init,) = bucket["initContainers"]
    assert (init["name"], init["image"]) == ("fetch-model", sources.DEFAULT_S3_IMAGE)
    assert init["volumeMounts"] == [{"name": "rel-storage", "mountPath": "/data"}]  # the cache PVC
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in init["env"] if "valueFrom" in e}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}
    assert init["env"][0] == {"name": "RELEASE_NAME", "value": "rel"}  # the chart's own, first
    engine = bucket["containers"][0]
    assert engine["command"][2] == "/data/models/s3/models/qwen/Qwen2.5-1.5B"
    assert not [e for e in engine["env"] if e["name"].startswith("AWS_")]

    car = pod_of(found, "car")
    assert car["initContainers"][0]["image"] == "registry.example.com/models/granite:1.0"
    assert car["containers"][0]["command"][2] == "/data/models/oci/registry.example.com/models/granite/1.0"

    hub = pod_of(found, "hub")
    assert hub["volumes"] == [{"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}}]
    assert hub["containers"][0]["volumeMounts"] == [{"name": "model-cache", "mountPath": "/data"}]
    assert {"name": "HF_HUB_CACHE", "value": "/data/hub"} in hub["containers"][0]["env"]


@needs_helm
def test_helm_template_mounts_an_image_volume(run: Run, models_file: Path, tmp_path: Path) -> None:
    models_file.write_text(entry("oci://registry.example.com/models/granite:1.0"))
    chart = mini_chart_at("0.1.12", tmp_path)
    env = {
        **TEMPLATE_ENV,
        "VLLM_CHART": str(chart),
        "VLLM_CHART_VERSION": "0.1.12",
        "VLLM_OCI_METHOD": "image",
    }
    result = run("template", env=env)
    assert result.exit_code == 0, result.stderr
    found = objects(result.stdout)
    pod = pod_of(found, "m")
    assert pod["volumes"] == [
        {
            "name": "model-source",
            "image": {"reference": "registry.example.com/models/granite:1.0", "pullPolicy": "IfNotPresent"},
        }
    ]
    assert pod["containers"][0]["command"][2] == "/model-source/models"
    assert not [kind for kind, _ in found if kind == "PersistentVolumeClaim"]


# ------------------------------------------------------------------ on the sandbox

ON_CLUSTER = """\
- name: local
  modelURL: pvc://shared-models/llama/Llama-3.1-8B
- name: bucket
  modelURL: s3://models/qwen/Qwen2.5-1.5B
  s3Secret: s3-creds
  s3Endpoint: http://minio.storage.svc:9000
- name: car
  modelURL: oci://registry.example.com/models/granite:1.0
"""


def test_install_puts_each_source_on_the_cluster(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from tests.sandbox.kube.controllers import R

    sandbox, ns = cluster.sandbox, cluster.namespace
    monkeypatch.setenv("VLLM_OCI_METHOD", "image")
    models_file.write_text(ON_CLUSTER)
    sandbox.create_namespace(ns)
    # Without the claim and the Secret no engine pod could start: refused before helm.
    refused = run("install", "--yes", "--no-api-key")
    assert refused.exit_code == 2, refused.stderr
    assert "2 objects the model sources need are not in namespace" in refused.stderr
    assert "PersistentVolumeClaim (pvc:// source) shared-models (local)" in refused.stderr
    assert "Secret (s3Secret) s3-creds (bucket)" in refused.stderr
    assert sandbox.list("Deployment", ns) == []

    keys = {
        key: base64.b64encode(b"not-a-real-key").decode()
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    sandbox.call(sandbox.store.create, R["Secret"], ns, {"metadata": {"name": "s3-creds"}, "data": keys})
    claim = {
        "metadata": {"name": "shared-models"},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "100Gi"}}},
    }
    sandbox.call(sandbox.store.create, R["PersistentVolumeClaim"], ns, claim)
    result = run("install", "--yes", "--no-api-key")
    assert result.exit_code == 0, result.stderr

    claims = {c["metadata"]["name"] for c in sandbox.list("PersistentVolumeClaim", ns)}
    assert claims == {"shared-models", "vllm-bucket-storage-claim"}  # no cache for pvc:// or oci://

    local = sandbox.get("Deployment", ns, "vllm-local-deployment-vllm")
    assert local is not None
    pod = local["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "model-source", "persistentVolumeClaim": {"claimName": "shared-models", "readOnly": True}}
    ]
    engine = pod["containers"][0]
    assert engine["volumeMounts"] == [
        {"name": "model-source", "mountPath": "/model-source", "readOnly": True}
    ]
    assert engine["command"][:3] == ["vllm", "serve", "/model-source/llama/Llama-3.1-8B"]

    bucket = sandbox.get("Deployment", ns, "vllm-bucket-deployment-vllm")
    assert bucket is not None
    (init,) = bucket["spec"]["template"]["spec"]["initContainers"]
    assert init["name"] == "fetch-model"
    refs = [e["valueFrom"]["secretKeyRef"] for e in init["env"] if "valueFrom" in e]
    assert [(r["name"], r["key"]) for r in refs] == [
        ("s3-creds", "AWS_ACCESS_KEY_ID"),
        ("s3-creds", "AWS_SECRET_ACCESS_KEY"),
        ("s3-creds", "AWS_SESSION_TOKEN"),
    ]
    assert init["volumeMounts"] == [{"name": "vllm-storage", "mountPath": "/data"}]

    car = sandbox.get("Deployment", ns, "vllm-car-deployment-vllm")
    assert car is not None
    assert car["spec"]["template"]["spec"]["volumes"] == [
        {
            "name": "model-source",
            "image": {"reference": "registry.example.com/models/granite:1.0", "pullPolicy": "IfNotPresent"},
        }
    ]

    # doctor reads the same objects, and knows the sandbox (1.33) has image volumes off.
    report = json.loads(run("doctor", "-o", "json", "--offline").stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["claim shared-models"]["status"] == "ok"
    assert checks["claim shared-models"]["detail"] == "pvc:// source of local: ReadOnlyMany"
    assert checks["s3 secret s3-creds"]["status"] == "ok"
    assert checks["image volumes"]["status"] == "warn"
    assert "ImageVolume feature is beta and off" in checks["image volumes"]["detail"]


def test_the_commented_examples_show_each_source() -> None:
    from tests.conftest import REPO
    from vllmctl.catalog.store import parse

    text = (REPO / "models.example.yaml").read_text().split("# Examples", 1)[1]
    body = "\n".join(line[2:] if line.startswith("# ") else "" for line in text.splitlines()[1:])
    catalog = parse(Path("models.yaml"), body.encode())
    assert catalog.problems == []
    assert {"cacheClaim", "s3Secret", "s3Endpoint"} <= {key for m in catalog.models for key in m.data}
    assert {"pvc", "s3", "oci"} <= {sources.parse(m.data["modelURL"]).scheme for m in catalog.models}


UNFIT = """\
- name: local
  modelURL: pvc://gone/llama
- name: bucket
  modelURL: s3://models/qwen
  s3Secret: half-creds
- name: shared
  modelURL: Qwen/Qwen2.5-0.5B-Instruct
  replicaCount: 2
  cacheClaim: one-node-cache
"""


def test_doctor_names_missing_secrets_keys_and_claims_that_do_not_fit(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    import json

    from tests.sandbox.kube.controllers import R

    sandbox, ns = cluster.sandbox, cluster.namespace
    models_file.write_text(UNFIT)
    sandbox.create_namespace(ns)
    key = base64.b64encode(b"x").decode()
    sandbox.call(
        sandbox.store.create,
        R["Secret"],
        ns,
        {"metadata": {"name": "half-creds"}, "data": {"AWS_ACCESS_KEY_ID": key}},
    )
    claim = {
        "metadata": {"name": "one-node-cache"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
    }
    sandbox.call(sandbox.store.create, R["PersistentVolumeClaim"], ns, claim)
    result = run("doctor", "-o", "json", "--offline")
    assert result.exit_code == 2
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    gone = checks["claim gone"]
    assert (gone["status"], gone["detail"]) == (
        "fail",
        f"PersistentVolumeClaim gone (pvc:// source of local) is not in {ns}",
    )
    half = checks["s3 secret half-creds"]
    assert half["status"] == "fail" and half["detail"].endswith("has no AWS_SECRET_ACCESS_KEY")
    assert "--from-env-file" in half["fix"]
    shared = checks["claim one-node-cache"]
    assert shared["status"] == "warn"
    assert shared["detail"] == (
        "model cache of shared: ReadWriteOnce: only pods on one node can mount it, and 2 engine pods use it"
    )
    assert "image volumes" not in checks  # VLLM_OCI_METHOD=copy, and no oci:// model


def test_add_model_writes_valid_entries_for_each_source(run: Run, models_file: Path) -> None:
    for name, url in (
        ("local", "pvc://models/llama"),
        ("bucket", "s3://models/qwen"),
        ("car", "oci://r.io/m:1"),
    ):
        result = run("add-model", "--yes", "--offline", "--name", name, "--model-url", url)
        assert result.exit_code == 0, result.stderr
    data = {m.name: m.data for m in models(models_file.read_text())}
    assert "pvcStorage" not in data["local"]  # a pvc:// model caches nothing
    assert data["bucket"]["pvcStorage"] == data["car"]["pvcStorage"] == "50Gi"  # where the copy goes
    refused = run(
        "add-model", "--yes", "--offline", "--name", "x", "--model-url", "pvc://m/x", "--storage", "1Gi"
    )
    assert refused.exit_code == 2 and "caches nothing; remove pvcStorage" in refused.stderr
