"""KV-cache offload (issue 17, section 2): models.yaml's kvCache as the chart's lmcacheConfig
on an LMCache image, the cache server and the shared storage as settings; checked at the
key and by chart version, rendered per chart version, made by the chart (helm template on
the mini chart, an install on the sandbox), shown by doctor and status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Run
from tests.sandbox.fixtures import MINI_CHART, ClusterEnv, mini_chart_at
from vllmctl.catalog.constants import DEFAULTS
from vllmctl.catalog.store import parse
from vllmctl.core.errors import CatalogError, UsageError
from vllmctl.core.findings import Report
from vllmctl.features import kv_cache_values
from vllmctl.features.contexts import FeatureReading
from vllmctl.features.kv_cache_cluster import check, model_offload
from vllmctl.render.values import default_render_input, packaged_templates, render
from vllmctl.settings import Settings

SMALL = "- name: small\n  modelURL: org/small\n  gated: false\n  requestGPU: 0\n  requestCPU: 1\n"
OFFLOAD = SMALL + "  requestMemory: 8Gi\n  kvCache:\n    cpuOffload: 4Gi\n"
PLAIN = (
    "- name: plain\n  modelURL: org/plain\n  gated: false\n  requestGPU: 0\n  requestCPU: 1\n"
    "  requestMemory: 1Gi\n"
)
CHART_ENV = {"VLLM_CHART": str(MINI_CHART), "VLLM_MODEL_TAG": "v0.10.1"}  # 0.1.8


def rendered(models: str = OFFLOAD, templates: Path | None = None, **env: str) -> Any:
    settings = Settings.resolve(
        {}, environ={"VLLM_MODEL_TAG": "v0.11.0", "VLLM_CHART_VERSION": "0.1.8", **env}
    )
    catalog = parse(Path("models.yaml"), models.encode())
    return render(catalog.models, default_render_input(settings, templates_dir=templates))


def spec_of(models: str = OFFLOAD, **env: str) -> dict[str, Any]:
    found: dict[str, Any] = rendered(models, **env).values["servingEngineSpec"]["modelSpec"][0]
    return found


def refusal(models: str = OFFLOAD, **env: str) -> str:
    with pytest.raises(UsageError) as caught:
        rendered(models, **env)
    return "\n".join([caught.value.message, *caught.value.details])


def problems(text: str) -> list[str]:
    """What validation says about a models.yaml text, each `file:line:col: path: message`."""
    return [str(p) for p in parse(Path("models.yaml"), text.encode()).validation.problems]


# --- good values ------------------------------------------------------------------------------


def test_kv_cache_becomes_lmcache_config_on_the_lmcache_image() -> None:
    spec = spec_of(
        OFFLOAD.replace("cpuOffload: 4Gi", "cpuOffload: 4Gi\n    logLevel: WARNING"),
        VLLM_CHART_VERSION="0.1.10",
    )
    assert spec["lmcacheConfig"] == {"enabled": True, "cpuOffloadingBufferSize": "4", "logLevel": "WARNING"}
    assert (spec["repository"], spec["tag"]) == ("lmcache/vllm-openai", "v0.3.9post2")


def test_the_model_tag_and_the_lmcache_settings_choose_the_image() -> None:
    assert spec_of(OFFLOAD + "  tag: v0.3.7\n")["tag"] == "v0.3.7"
    spec = spec_of(VLLM_LMCACHE_IMAGE="registry.example.com/lmcache/vllm-openai", VLLM_LMCACHE_TAG="v0.3.8")
    assert (spec["repository"], spec["tag"]) == ("registry.example.com/lmcache/vllm-openai", "v0.3.8")
    # a model without kvCache keeps the engine image settings
    plain = spec_of(PLAIN)
    assert (plain["repository"], plain["tag"]) == ("vllm/vllm-openai", "v0.11.0")
    assert "lmcacheConfig" not in plain


def test_a_pinned_image_without_lmcache_is_kept_with_a_warning() -> None:
    out = rendered(OFFLOAD + "  image: vllm/vllm-openai\n")
    assert out.values["servingEngineSpec"]["modelSpec"][0]["repository"] == "vllm/vllm-openai"
    (said,) = [w for w in out.warnings if "LMCache" in w]
    assert said.startswith("small: kvCache is on but its image 'vllm/vllm-openai' is not lmcache/vllm-openai")


def test_the_tag_warnings_follow_the_image_each_model_gets() -> None:
    # only kvCache models: the floating VLLM_MODEL_TAG is used by none of them
    quiet = rendered(VLLM_MODEL_TAG="latest").warnings
    assert not any("not pinned to a vLLM release" in w for w in quiet)
    assert any(
        "not pinned to a vLLM release" in w
        for w in rendered(OFFLOAD + PLAIN, VLLM_MODEL_TAG="latest").warnings
    )
    (floating,) = [w for w in rendered(VLLM_LMCACHE_TAG="latest").warnings if "VLLM_LMCACHE_TAG" in w]
    assert floating.startswith("VLLM_LMCACHE_TAG='latest' is not pinned: the kvCache engines start whatever")


def test_a_raw_lmcache_config_still_passes_through_and_counts() -> None:
    raw = (
        SMALL
        + "  requestMemory: 8Gi\n"
        + "  lmcacheConfig: {enabled: true, cpuOffloadingBufferSize: '4', enableController: true}\n"
    )
    out = rendered(raw, VLLM_CACHE_SERVER="true", VLLM_ROUTING_LOGIC="kvaware")
    spec = out.values["servingEngineSpec"]["modelSpec"][0]
    assert spec["lmcacheConfig"] == {
        "enabled": True,
        "cpuOffloadingBufferSize": "4",
        "enableController": True,
    }
    assert spec["repository"] == "vllm/vllm-openai"  # a raw lmcacheConfig chooses no image
    assert "cacheserverSpec" in out.values


def test_disk_offload_gets_a_directory_on_the_model_cache() -> None:
    spec = spec_of(OFFLOAD + "    diskOffload: 20Gi\n  env:\n    - {name: A, value: b}\n")
    assert spec["lmcacheConfig"]["diskOffloadingBufferSize"] == "20"
    assert spec["env"] == [
        {"name": "LMCACHE_LOCAL_DISK", "value": "file:///data/lmcache/"},
        {"name": "A", "value": "b"},
    ]


def test_disk_offload_needs_the_model_own_cache_volume() -> None:
    said = refusal(OFFLOAD + "    diskOffload: 20Gi\n  cacheClaim: shared\n")
    assert said.startswith("small: kvCache.diskOffload keeps KV blocks on the model's own cache volume")


def test_kvaware_routing_counts_kv_cache() -> None:
    assert rendered(VLLM_ROUTING_LOGIC="kvaware").values["routerSpec"]["routingLogic"] == "kvaware"


def test_the_defaults_this_layer_repeats_match_the_catalog() -> None:
    assert DEFAULTS["requestMemory"] == kv_cache_values.DEFAULT_REQUEST_MEMORY
    assert DEFAULTS["pvcStorage"] == kv_cache_values.DEFAULT_PVC_STORAGE


# --- bad values at file:line:column -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kv", "said"),
    [
        (
            "    cpuOffload: 1.5Gi\n",
            "models.yaml:8:17: models[0] (small).kvCache.cpuOffload: must be a size in whole GiB, e.g. 20Gi, "
            "not the string '1.5Gi'",
        ),
        (
            "    cpuOffload: 20\n",
            "models.yaml:8:17: models[0] (small).kvCache.cpuOffload: must be a size with its unit, e.g. 20Gi",
        ),
        (
            "    cpuOffload: 4Gi\n    logLevel: info\n",
            "models.yaml:9:15: models[0] (small).kvCache.logLevel: must be one of DEBUG, INFO, WARNING, "
            "ERROR, not the string 'info'; write 'INFO'",
        ),
        (
            "    diskOffload: 4Gi\n",
            "models.yaml:8:5: models[0] (small).kvCache: give cpuOffload, the CPU memory LMCache may fill "
            "with KV blocks",
        ),
        (
            "    cpuOffload: 4Gi\n    cpu: 1Gi\n",
            "models.yaml:9:5: models[0] (small).kvCache.cpu: unknown key 'cpu'",
        ),
    ],
)
def test_bad_field_values_are_refused_at_the_key(kv: str, said: str) -> None:
    text = SMALL + "  requestMemory: 8Gi\n  kvCache:\n" + kv
    found = problems(text)
    assert len(found) == 1 and found[0].startswith(said), found


def test_a_cpu_buffer_above_the_memory_request_is_refused_with_the_numbers() -> None:
    (found,) = problems(SMALL + "  requestMemory: 8Gi\n  kvCache:\n    cpuOffload: 12Gi\n")
    assert found.startswith(
        "models.yaml:8:5: models[0] (small).kvCache: cpuOffload 12Gi is more than requestMemory 8Gi: "
        "the buffer lives in the engine pod's memory. Raise requestMemory to the buffer plus what vLLM "
        "itself needs (e.g. 28Gi), or lower cpuOffload"
    )
    (default,) = problems(SMALL + "  kvCache:\n    cpuOffload: 20Gi\n")
    assert "cpuOffload 20Gi is more than requestMemory (the default) 16Gi:" in default
    (mebibytes,) = problems(SMALL + "  requestMemory: 10000Mi\n  kvCache:\n    cpuOffload: 10Gi\n")
    assert "cpuOffload 10Gi is more than requestMemory 10000Mi (9.77 GiB):" in mebibytes
    (chart_key,) = problems(
        SMALL
        + "  requestMemory: 64Gi\n  resources: {requests: {memory: 8Gi}}\n  kvCache:\n    cpuOffload: 10Gi\n"
    )
    assert "cpuOffload 10Gi is more than resources.requests.memory 8Gi:" in chart_key
    assert problems(OFFLOAD.replace("cpuOffload: 4Gi", "cpuOffload: 8Gi")) == []  # equal is allowed


def test_a_disk_buffer_beyond_the_cache_volume_and_both_keys_are_refused() -> None:
    (disk,) = problems(OFFLOAD + "    diskOffload: 50Gi\n")
    assert "models[0] (small).kvCache: diskOffload 50Gi does not fit in pvcStorage 50Gi" in disk
    (both,) = problems(OFFLOAD + "  lmcacheConfig: {enabled: true, cpuOffloadingBufferSize: '4'}\n")
    assert both.startswith(
        "models.yaml:9:18: models[0] (small).lmcacheConfig: give kvCache or lmcacheConfig, not both"
    )


def test_validate_exits_2_naming_the_position(run: Run, models_file: Path) -> None:
    models_file.write_text(SMALL + "  requestMemory: 8Gi\n  kvCache:\n    cpuOffload: 12Gi\n")
    result = run("validate")
    assert result.exit_code == 2
    assert (
        "models.yaml:8:5: models[0] (small).kvCache: cpuOffload 12Gi is more than requestMemory 8Gi"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


# --- the chart version gate -------------------------------------------------------------------


@pytest.mark.parametrize("chart", ["0.1.8", "0.1.9"])
def test_log_level_needs_chart_0_1_10(run: Run, models_file: Path, chart: str) -> None:
    models_file.write_text(OFFLOAD + "    logLevel: INFO\n")
    said = run("validate", env={"VLLM_CHART_VERSION": chart})
    assert said.exit_code == 2
    assert (
        "models.yaml:7:3: models[0] (small).kvCache: kvCache.logLevel needs chart 0.1.10 or newer"
        in said.stderr
    )
    assert f"chart {chart} always sets LMCACHE_LOG_LEVEL=DEBUG" in said.stderr
    refused = run("render", env={"VLLM_CHART_VERSION": chart, "VLLM_MODEL_TAG": "v0.11.0"})
    assert refused.exit_code == 2 and "kvCache.logLevel needs chart 0.1.10" in refused.stderr
    assert run("validate", env={"VLLM_CHART_VERSION": "0.1.10"}).exit_code == 0


# --- the cache server and the shared storage --------------------------------------------------


def test_the_cache_server_in_the_shape_of_each_chart_version() -> None:
    old = rendered(VLLM_CACHE_SERVER="true").values["cacheserverSpec"]
    assert (old["repository"], old["tag"]) == ("lmcache/vllm-openai", "v0.3.9post2")
    assert "enabled" not in old and "image" not in old  # 0.1.8: the key's presence switches it on
    assert old["labels"] == {"vllmctl.io/release": "vllm", "vllmctl.io/component": "cache-server"}
    assert old["resources"] == {"requests": {"cpu": "1", "memory": "8Gi"}}
    new = rendered(
        VLLM_CACHE_SERVER="true", VLLM_CHART_VERSION="0.1.11", VLLM_CACHE_SERVER_MEMORY="16Gi"
    ).values["cacheserverSpec"]
    assert new["enabled"] is True and new["image"] == {
        "repository": "lmcache/vllm-openai",
        "tag": "v0.3.9post2",
    }
    assert "repository" not in new and new["resources"]["requests"]["memory"] == "16Gi"
    assert "cacheserverSpec" not in rendered().values  # off by default


def test_cache_server_settings_are_checked() -> None:
    assert refusal(PLAIN, VLLM_CACHE_SERVER="true").startswith(
        "VLLM_CACHE_SERVER=true starts LMCache's cache server, but no model in models.yaml has kvCache"
    )
    assert "VLLM_CACHE_SERVER_MEMORY='lots' is not a memory quantity" in refusal(
        VLLM_CACHE_SERVER="true", VLLM_CACHE_SERVER_MEMORY="lots"
    )


def test_shared_storage_per_chart_version() -> None:
    nfs = {"VLLM_SHARED_STORAGE_SIZE": "100Gi", "VLLM_SHARED_STORAGE_NFS": "nfs.example.com:/exports/vllm"}
    old = rendered(**nfs).values["sharedPvcStorage"]
    assert old == {
        "size": "100Gi",
        "accessModes": ["ReadWriteMany"],
        "nfs": {"server": "nfs.example.com", "path": "/exports/vllm"},
        "storageClass": "standard",
    }
    out = rendered(
        VLLM_CHART_VERSION="0.1.12", VLLM_SHARED_STORAGE_SIZE="100Gi", VLLM_SHARED_STORAGE_CLASS="rwx"
    )
    assert out.values["sharedPvcStorage"] == {
        "size": "100Gi",
        "accessModes": ["ReadWriteMany"],
        "storageClass": "rwx",
        "enabled": True,
    }
    assert any("sets every engine's HF_HOME to /data/shared-pvc-storage" in w for w in out.warnings)


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"VLLM_SHARED_STORAGE_SIZE": "100Gi"},
            "VLLM_SHARED_STORAGE_SIZE on chart 0.1.8 needs VLLM_SHARED_STORAGE_NFS (server:/path) or "
            "VLLM_SHARED_STORAGE_HOST_PATH",
        ),
        (
            {"VLLM_SHARED_STORAGE_SIZE": "100Gi", "VLLM_SHARED_STORAGE_NFS": "nfs.example.com"},
            "VLLM_SHARED_STORAGE_NFS='nfs.example.com' is not an NFS export; write server:/path",
        ),
        (
            {
                "VLLM_SHARED_STORAGE_SIZE": "100Gi",
                "VLLM_SHARED_STORAGE_NFS": "a:/x",
                "VLLM_SHARED_STORAGE_HOST_PATH": "/x",
            },
            "VLLM_SHARED_STORAGE_NFS and VLLM_SHARED_STORAGE_HOST_PATH are both set",
        ),
        (
            {"VLLM_SHARED_STORAGE_CLASS": "rwx"},
            "VLLM_SHARED_STORAGE_CLASS is set but VLLM_SHARED_STORAGE_SIZE is not",
        ),
        (
            {"VLLM_SHARED_STORAGE_SIZE": "big", "VLLM_SHARED_STORAGE_HOST_PATH": "/x"},
            "VLLM_SHARED_STORAGE_SIZE='big' is not a size",
        ),
    ],
)
def test_bad_shared_storage_settings_are_refused_naming_the_setting(env: dict[str, str], said: str) -> None:
    assert said in refusal(**env)


def test_a_copied_template_without_the_cache_server_is_caught(tmp_path: Path) -> None:
    old = (packaged_templates() / "values.yaml.j2").read_text()
    (tmp_path / "values.yaml.j2").write_text(old[: old.index("{#- KV-cache offload")])
    with pytest.raises(CatalogError, match="the rendered values have cacheserverSpec = null"):
        rendered(templates=tmp_path, VLLM_CACHE_SERVER="true")


def test_an_environment_turns_the_cache_server_on(run: Run, models_file: Path) -> None:
    models_file.write_text(OFFLOAD)
    models_file.with_name("vllmctl.yaml").write_text(
        "environments:\n  prod:\n    cacheServer: true\n    cacheServerMemory: 4Gi\n    lmcacheTag: v0.3.8\n"
    )
    out = run("--env", "prod", "render", env={"VLLM_CHART_VERSION": "0.1.12", "VLLM_MODEL_TAG": "v0.11.0"})
    assert out.exit_code == 0, out.stderr
    values = yaml.safe_load(out.stdout)
    assert values["cacheserverSpec"]["image"] == {"repository": "lmcache/vllm-openai", "tag": "v0.3.8"}
    assert values["cacheserverSpec"]["resources"]["requests"]["memory"] == "4Gi"


# --- what the chart makes (helm template on the mini chart) ------------------------------------


def objects(run: Run, models_file: Path, models: str, **env: str) -> dict[tuple[str, str], Any]:
    if shutil.which("helm") is None:
        pytest.skip("scripts/test puts the pinned helm on PATH")
    models_file.write_text(models)
    result = run("template", env={**CHART_ENV, **env})
    assert result.exit_code == 0, result.stderr
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d}


def engine(found: dict[tuple[str, str], Any], model: str = "small") -> Any:
    return found[("Deployment", f"vllm-{model}-deployment-vllm")]["spec"]["template"]["spec"]


def lmcache_env(pod: Any) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom"))
        for e in pod["containers"][0]["env"]
        if e["name"].startswith("LMCACHE_") or e["name"] in ("HF_HOME", "VLLM_RPC_TIMEOUT")
    }


def test_helm_template_of_chart_0_1_8_shows_lmcache_and_the_cache_server(run: Run, models_file: Path) -> None:
    found = objects(
        run,
        models_file,
        OFFLOAD + "    diskOffload: 10Gi\n" + PLAIN,
        VLLM_CACHE_SERVER="true",
        VLLM_SHARED_STORAGE_SIZE="20Gi",
        VLLM_SHARED_STORAGE_NFS="nfs.example.com:/exports/vllm",
    )
    pod = engine(found)
    container = pod["containers"][0]
    assert container["image"] == "lmcache/vllm-openai:v0.3.9post2"
    assert container["command"][0] == "/opt/venv/bin/vllm"
    assert container["command"][-2:] == [
        "--kv-transfer-config",
        '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}',
    ]
    assert lmcache_env(pod) == {
        "HF_HOME": "/data",
        "LMCACHE_LOG_LEVEL": "DEBUG",  # 0.1.8 writes DEBUG whatever lmcacheConfig says
        "LMCACHE_LOCAL_DISK": "file:///data/lmcache/",
        "LMCACHE_USE_EXPERIMENTAL": "True",
        "VLLM_RPC_TIMEOUT": "1000000",
        "LMCACHE_LOCAL_CPU": "True",
        "LMCACHE_MAX_LOCAL_CPU_SIZE": "4",
        "LMCACHE_MAX_LOCAL_DISK_SIZE": "10",
        "LMCACHE_REMOTE_URL": "lm://vllm-cache-server-service:80",
        "LMCACHE_REMOTE_SERDE": "naive",
        "LMCACHE_LMCACHE_INSTANCE_ID": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    assert "/data/shared-pvc-storage" in [m["mountPath"] for m in container["volumeMounts"]]
    assert "LMCACHE_USE_EXPERIMENTAL" not in lmcache_env(engine(found, "plain"))
    server = found[("Deployment", "vllm-deployment-cache-server")]
    (box,) = server["spec"]["template"]["spec"]["containers"]
    assert box["image"] == "lmcache/vllm-openai:v0.3.9post2"
    assert box["command"] == ["/opt/venv/bin/lmcache_server", "0.0.0.0", "8000"]
    assert server["spec"]["selector"]["matchLabels"] == {
        "vllmctl.io/release": "vllm",
        "vllmctl.io/component": "cache-server",
    }
    service = found[("Service", "vllm-cache-server-service")]
    assert service["spec"]["ports"] == [
        {"name": "cacheserver-sport", "port": 80, "targetPort": 8000, "protocol": "TCP"}
    ]
    volume = found[("PersistentVolume", "vllm-shared-pvc-storage")]
    assert volume["spec"]["nfs"] == {"server": "nfs.example.com", "path": "/exports/vllm"}
    assert ("PersistentVolumeClaim", "vllm-shared-pvc-storage-claim") in found


def test_helm_template_of_chart_0_1_12_uses_the_log_level_and_enabled_keys(
    run: Run, models_file: Path, tmp_path: Path
) -> None:
    found = objects(
        run,
        models_file,
        OFFLOAD + "    logLevel: WARNING\n",
        VLLM_CHART=str(mini_chart_at("0.1.12", tmp_path)),
        VLLM_CHART_VERSION="0.1.12",
        VLLM_CACHE_SERVER="true",
        VLLM_SHARED_STORAGE_SIZE="20Gi",
    )
    env = lmcache_env(engine(found))
    assert (env["LMCACHE_LOG_LEVEL"], env["HF_HOME"]) == ("WARNING", "/data/shared-pvc-storage")
    assert ("Service", "vllm-cache-server-service") in found
    assert ("PersistentVolume", "vllm-shared-pvc-storage") not in found  # 0.1.11+: a claim from the class
    claim = found[("PersistentVolumeClaim", "vllm-shared-pvc-storage-claim")]
    assert "volumeName" not in claim["spec"] and claim["spec"]["accessModes"] == ["ReadWriteMany"]


# --- doctor and status ------------------------------------------------------------------------


def doctor_rows(models: str, kube: Any = None, **env: str) -> list[tuple[str, str, str]]:
    settings = Settings.resolve({}, environ={"VLLM_CHART_VERSION": "0.1.8", **env})
    report = Report()
    check(report, kube, settings, parse(Path("models.yaml"), models.encode()).models)
    return [(c.name, c.status, c.detail) for c in report.checks]


def test_doctor_checks_the_offload_image() -> None:
    assert doctor_rows(PLAIN) == []
    assert doctor_rows(OFFLOAD) == [
        (
            "kv cache offload",
            "ok",
            "small: LMCache offload on lmcache/vllm-openai:v0.3.9post2 (or the model's tag)",
        )
    ]
    ((name, status, detail),) = doctor_rows(OFFLOAD + "  image: vllm/vllm-openai\n")
    assert (name, status) == ("kv cache offload", "warn")
    assert detail == "kvCache models on images that may lack LMCache: small (vllm/vllm-openai)"
    assert doctor_rows(OFFLOAD, VLLM_CACHE_SERVER="true")[-1] == (
        "cache server",
        "skip",
        "not judged: the cluster did not answer",
    )


def test_status_reads_the_engine_environment() -> None:
    def env(**values: str) -> Any:
        items = [{"name": k, "value": v} for k, v in values.items()]
        return {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "env": items}]}}}}

    assert model_offload(FeatureReading(), env(HF_HOME="/data")) is None
    missing = model_offload(
        FeatureReading({"name": "r-deployment-cache-server", "deployment": None}),
        env(LMCACHE_USE_EXPERIMENTAL="True", LMCACHE_LOCAL_CPU="True", LMCACHE_MAX_LOCAL_CPU_SIZE="4",
            LMCACHE_REMOTE_URL="lm://r-cache-server-service:80"),
    )  # fmt: skip
    assert missing is not None and (missing.cpu, missing.cache_server) == ("4", "missing")
    assert missing.problem == (
        "its LMCACHE_REMOTE_URL lm://r-cache-server-service:80 points at Deployment "
        "r-deployment-cache-server, which does not exist"
    )


def test_install_makes_the_cache_server_and_status_and_doctor_read_it(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key, value in {
        **CHART_ENV,
        "VLLM_CHART": str(mini_chart_at("0.1.12", tmp_path)),
        "VLLM_CHART_VERSION": "0.1.12",
        "VLLM_CACHE_SERVER": "true",
        "VLLM_CACHE_SERVER_MEMORY": "1Gi",
        "VLLM_SHARED_STORAGE_SIZE": "2Gi",
    }.items():
        monkeypatch.setenv(key, value)
    models_file.write_text(OFFLOAD + "    logLevel: INFO\n")
    installed = run("install", "--yes", "--no-api-key")
    assert installed.exit_code == 0, installed.stderr
    sandbox, namespace = cluster.sandbox, cluster.namespace
    assert sandbox.get("Service", namespace, "vllm-cache-server-service") is not None
    claim = sandbox.get("PersistentVolumeClaim", namespace, "vllm-shared-pvc-storage-claim")
    assert claim is not None and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    server = sandbox.get("Deployment", namespace, "vllm-deployment-cache-server")
    assert server is not None and server["status"].get("readyReplicas") == 1
    deployment = sandbox.get("Deployment", namespace, "vllm-small-deployment-vllm")
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    env = lmcache_env(pod)
    assert env["HF_HOME"] == "/data/shared-pvc-storage"
    assert {
        "name": "vllm-shared-pvc-storage",
        "persistentVolumeClaim": {"claimName": "vllm-shared-pvc-storage-claim"},
    } in pod["volumes"]
    assert (env["LMCACHE_MAX_LOCAL_CPU_SIZE"], env["LMCACHE_REMOTE_URL"], env["LMCACHE_LOG_LEVEL"]) == (
        "4",
        "lm://vllm-cache-server-service:80",
        "INFO",
    )
    text = run("status").stdout
    assert (
        "KV OFFLOAD   CPU   DISK   REMOTE" in text
        and "lm://vllm-cache-server-service:80" in text
        and "1/1 ready" in text
    )
    data = json.loads(run("status", "-o", "json").stdout)
    (model,) = data["models"]
    assert model["kvCache"] == {
        "cpu": "4",
        "disk": None,
        "remote": "lm://vllm-cache-server-service:80",
        "cache_server": "1/1 ready",
        "problem": None,
    }
    doctor = run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes")
    rows = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert (rows["cache server"]["status"], rows["cache server"]["detail"]) == (
        "ok",
        "Deployment vllm-deployment-cache-server Ready (1/1)",
    )
    assert rows["kv cache offload"]["status"] == "ok"


def test_a_mistyped_key_inside_kv_cache_is_named_at_its_own_position(run: Run, models_file: Path) -> None:
    # Without cpuOffload the mapping is incomplete too; the typo is what to fix first.
    models_file.write_text(SMALL + "  kvCache:\n    cpuOfload: 4Gi\n")
    result = run("validate")
    assert result.exit_code == 2
    lines = [line.strip() for line in result.stderr.splitlines() if "kvCache" in line]
    assert lines == [
        "models.yaml:7:5: models[0] (small).kvCache.cpuOfload: "
        "unknown key 'cpuOfload'; did you mean 'cpuOffload'?"
    ]
    models_file.write_text(SMALL + "  kvCache: {cpuOffload: 4Gi, dskOffload: 4Gi}\n")
    beside = run("validate")
    assert (
        "models.yaml:6:30: models[0] (small).kvCache.dskOffload: "
        "unknown key 'dskOffload'; did you mean 'diskOffload'?" in beside.stderr
    )
