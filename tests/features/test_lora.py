"""LoRA adapters (issue 17, section 3): models.yaml's `lora:` checked at file:line:column,
gated by chart version, rendered as --lora-modules or the chart's LoraAdapter objects,
made by the chart (helm template on the mini chart), served in the sandbox (list-api-models,
test-completions MODEL:ADAPTER), read back by status, checked by doctor and the gated check."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.conftest import Run
from tests.features.test_engine_fields import problems, rendered, spec_of
from tests.sandbox.fixtures import ClusterEnv, mini_chart_at, release_on, running_sandbox
from tests.sandbox.sandbox import Sandbox, SandboxConfig
from vllmctl.core.errors import UsageError
from vllmctl.core.findings import Report

needs_helm = pytest.mark.skipif(shutil.which("helm") is None, reason="scripts/test puts helm on PATH")
SMALL = (
    "- name: small\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n  gated: false\n"
    "  requestGPU: 0\n  requestCPU: 1\n  requestMemory: 1Gi\n"
)
AT_START = SMALL + "  lora:\n    - name: sql\n      source: org/sql-lora\n"
ALL_KINDS = (
    SMALL
    + "  lora:\n"
    + "    - name: sql\n      source: org/sql-lora\n"
    + "    - name: chat\n      source: pvc://adapters/chat/v2\n"
    + "    - name: late\n      source: org/late-lora\n      atStart: false\n"
    + "    - name: local\n      source: pvc://adapters/local\n      atStart: false\n"
)
LA_API = "production-stack.vllm.ai/v1alpha1"


def after(args: list[str], flag: str) -> list[str]:
    out = []
    for arg in args[args.index(flag) + 1 :]:
        if arg.startswith("--"):
            break
        out.append(arg)
    return out


# ------------------------------------------------------------------ good values


def test_an_adapter_at_start_is_a_lora_module_with_enable_lora() -> None:
    spec = spec_of(AT_START)
    assert spec["enableLoRA"] is True
    config = spec["vllmConfig"]
    assert config["maxLoras"] == "1"
    assert after(config["extraArgs"], "--lora-modules") == ["sql=org/sql-lora"]
    # the base model keeps its served names: the adapter's parent in /v1/models is "small"
    assert after(config["extraArgs"], "--served-model-name")[0] == "small"
    assert "env" not in spec and "extraVolumes" not in spec


def test_every_kind_of_adapter() -> None:
    out = rendered(ALL_KINDS)
    spec = next(m for m in out.values["servingEngineSpec"]["modelSpec"] if m["name"] == "small")
    config = spec["vllmConfig"]
    assert config["maxLoras"] == "4"
    assert after(config["extraArgs"], "--lora-modules") == ["sql=org/sql-lora", "chat=/lora/chat/chat/v2"]
    assert spec["extraVolumes"] == [
        {"name": "lora-chat", "persistentVolumeClaim": {"claimName": "adapters", "readOnly": True}},
        {"name": "lora-local", "persistentVolumeClaim": {"claimName": "adapters", "readOnly": True}},
    ]
    assert spec["extraVolumeMounts"] == [
        {"name": "lora-chat", "mountPath": "/lora/chat", "readOnly": True},
        {"name": "lora-local", "mountPath": "/lora/local", "readOnly": True},
    ]
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in spec["env"]
    assert out.values["loraController"] == {"enableLoraController": True}
    late, local = out.values["loraAdapters"]
    assert late == {
        "name": "vllm-small-late",
        "baseModel": "small",
        "adapterSource": {
            "type": "huggingface",
            "adapterName": "late",
            "repository": "org/late-lora",
            "credentials": {"secretName": "hf-token", "secretKey": "token"},
        },
        "loraAdapterDeploymentConfig": {"algorithm": "default"},
    }
    # the claim is mounted at /lora/<adapter>, the path inside it follows
    assert local["adapterSource"] == {
        "type": "local",
        "adapterName": "local",
        "adapterPath": "/lora/local/local",
    }


def test_the_api_key_reference_is_given_to_each_adapter() -> None:
    from vllmctl.chart.inputs import API_KEY_SECRET

    out = rendered(ALL_KINDS, api_key=API_KEY_SECRET)
    assert {a["vllmApiKey"]["secretName"] for a in out.values["loraAdapters"]} == {"vllm-api-key"}


def test_the_entrys_max_loras_and_volumes_are_kept() -> None:
    text = (
        ALL_KINDS.replace("  requestGPU: 0\n", "  requestGPU: 0\n  vllmConfig: {maxLoras: 2}\n")
        + "  extraVolumes: [{name: scratch, emptyDir: {}}]\n"
        + "  extraVolumeMounts: [{name: scratch, mountPath: /scratch}]\n"
    )
    spec = spec_of(text)
    assert spec["vllmConfig"]["maxLoras"] == "2"
    assert [v["name"] for v in spec["extraVolumes"]] == ["lora-chat", "lora-local", "scratch"]


def test_no_lora_renders_nothing_of_it() -> None:
    out = rendered(SMALL)
    assert "loraAdapters" not in out.values and "loraController" not in out.values
    assert "enableLoRA" not in out.values["servingEngineSpec"]["modelSpec"][0]


def test_enable_lora_alone_stays_a_passthrough_key() -> None:
    spec = spec_of(SMALL + "  enableLoRA: true\n")
    assert spec["enableLoRA"] is True and "maxLoras" not in spec["vllmConfig"]


def test_a_copied_template_that_drops_the_adapters_is_caught(tmp_path: Path) -> None:
    from vllmctl.core.errors import CatalogError
    from vllmctl.render.values import packaged_templates

    copy = tmp_path / "templates"
    shutil.copytree(packaged_templates(), copy)
    values = copy / "values.yaml.j2"
    values.write_text(values.read_text().replace("{%- if lora.adapters %}", "{%- if false %}"))
    with pytest.raises(CatalogError, match="loraAdapters"):
        rendered(ALL_KINDS, templates_dir=copy)


# ------------------------------------------------------------------ bad values, at file:line:column


@pytest.mark.parametrize(
    ("lora", "where", "message"),
    [
        ("lora: org/sql-lora", "6:9:", "must be a list of adapters"),
        ("lora: []", "6:9:", "must be a list of adapters"),
        ("lora:\n  - org/sql-lora", "7:7:", "each adapter must be a mapping"),
        ("lora:\n  - {name: sql}", "7:7:", "an adapter needs source"),
        ("lora:\n  - {name: SQL, source: org/x}", "7:14:", "'SQL' must be lowercase letters"),
        ("lora:\n  - {name: sql, source: 's3://bucket/sql'}", "7:27:", "s3:// is not supported for adapters"),
        (
            "lora:\n  - {name: sql, source: 'pvc://Bad_Claim/x'}",
            "7:27:",
            "the claim is not a Kubernetes name",
        ),
        ("lora:\n  - {name: sql, source: 'pvc://adapters/../x'}", "7:27:", "is not a plain part of a path"),
        ("lora:\n  - {name: sql, source: 'not a repo'}", "7:27:", "is not a Hub repo id"),
        (
            "lora:\n  - {name: sql, source: org/x, atStart: 'no'}",
            "7:43:",
            "must be true (vLLM loads it at start)",
        ),
        (
            "lora:\n  - {name: sql, source: org/x, atstart: true}",
            "7:43:",
            "unknown key 'atstart' in an adapter",
        ),
        (
            "lora:\n  - {name: sql, source: org/x}\n  - {name: sql, source: org/y}",
            "8:14:",
            "the adapter name 'sql' is given twice",
        ),
    ],
)
def test_bad_values_are_named_with_their_position(lora: str, where: str, message: str) -> None:
    indented = "".join(f"  {line}\n" for line in lora.splitlines())
    (problem,) = problems(SMALL.replace("  gated: false\n", "") + indented)
    assert problem.startswith(f"models.yaml:{where} models[0] (small).lora"), problem
    assert message in problem, problem


def test_enable_lora_false_contradicts_the_adapters() -> None:
    (problem,) = problems(AT_START + "  enableLoRA: false\n")
    assert problem.startswith(
        "models.yaml:10:15: models[0] (small).enableLoRA: enableLoRA: false contradicts lora:"
    )


def test_a_controller_hub_adapter_needs_the_models_cache_pvc() -> None:
    text = ALL_KINDS.replace("  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n", "  modelURL: pvc://models/qwen\n")
    (problem,) = problems(text)
    assert (
        "models[0] (small).lora: a Hub adapter with atStart: false is downloaded by the chart's sidecar"
        in problem
    )


def test_lora_modules_in_extra_args_and_lora_together_are_refused() -> None:
    text = AT_START.replace(
        "  requestGPU: 0\n", "  requestGPU: 0\n  vllmConfig: {extraArgs: [--lora-modules, a=b]}\n"
    )
    with pytest.raises(
        UsageError, match=r"small: vllmConfig\.extraArgs has --lora-modules and the entry has lora:"
    ):
        rendered(text)


def test_validate_names_the_file_position_and_exits_2(run: Run, models_file: Path) -> None:
    models_file.write_text(AT_START.replace("org/sql-lora", "s3://bucket/sql"))
    result = run("validate")
    assert result.exit_code == 2
    assert "models.yaml:9:15: models[0] (small).lora: s3:// is not supported for adapters" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ the chart-version gate


def test_controller_adapters_need_chart_0_1_7_and_at_start_ones_do_not() -> None:
    # Every chart vllmctl renders for (0.1.8+, the routing logic's own gate) has both paths;
    # the rule is the one place that says so, for render and validate alike.
    from vllmctl.render.chart_rules import entry_problems

    late = {"name": "small", "lora": [{"name": "late", "source": "org/late-lora", "atStart": False}]}
    ((key, why),) = entry_problems(late, "0.1.6")
    assert key == "lora"
    assert why.startswith("adapters with atStart: false (late) need chart 0.1.7 or newer")
    assert entry_problems(late, "0.1.7") == [] and entry_problems(late, "0.1.8") == []
    at_start = {"name": "small", "lora": [{"name": "sql", "source": "org/sql-lora"}]}
    assert entry_problems(at_start, "0.1.6") == []


def test_validate_reports_the_gate_at_the_key(run: Run, models_file: Path) -> None:
    models_file.write_text(SMALL + "  lora:\n    - {name: late, source: org/late-lora, atStart: false}\n")
    result = run("validate", env={"VLLM_CHART_VERSION": "0.1.6"})
    assert result.exit_code == 2
    assert (
        "models.yaml:7:3: models[0] (small).lora: adapters with atStart: false (late) need chart 0.1.7"
        in (result.stderr)
    )


# ------------------------------------------------------------------ helm template on the mini chart


@needs_helm
@pytest.mark.parametrize("version", ["0.1.8", "0.1.12"])
def test_helm_template_makes_the_engine_args_the_adapters_and_the_controller(
    run: Run, models_file: Path, tmp_path: Path, version: str
) -> None:
    models_file.write_text(ALL_KINDS)
    chart = mini_chart_at(version, tmp_path)
    result = run("template", env={"VLLM_CHART": str(chart), "VLLM_MODEL_TAG": "v0.10.1"})
    assert result.exit_code == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    engine = next(d for d in by_kind["Deployment"] if d["metadata"]["name"] == "vllm-small-deployment-vllm")
    containers = engine["spec"]["template"]["spec"]["containers"]
    vllm = containers[0]["command"]
    assert vllm.index("--enable-lora") == vllm.index("--port") + 2
    assert after(vllm, "--max_loras") == ["4"]
    assert after(vllm, "--lora-modules") == ["sql=org/sql-lora", "chat=/lora/chat/chat/v2"]
    assert [c["name"] for c in containers] == ["vllm", "sidecar"]
    mounts = {m["name"]: m["mountPath"] for m in containers[0]["volumeMounts"]}
    assert mounts["lora-chat"] == "/lora/chat"
    adapters = {a["metadata"]["name"]: a for a in by_kind["LoraAdapter"]}
    assert sorted(adapters) == ["vllm-small-late", "vllm-small-local"]
    late = adapters["vllm-small-late"]
    assert late["apiVersion"] == LA_API
    assert late["metadata"]["labels"] == {
        "app.kubernetes.io/component": "lora-adapter",
        "helm-release-name": "vllm",
    }
    assert late["spec"]["adapterSource"]["credentialsSecretRef"] == {"name": "hf-token", "key": "token"}
    assert adapters["vllm-small-local"]["spec"]["adapterSource"]["adapterPath"] == "/lora/local/local"
    assert any(d["metadata"]["name"] == "vllm-lora-controller" for d in by_kind["Deployment"])


# ------------------------------------------------------------------ the gated check and the Hub


def test_a_gated_adapter_makes_its_model_need_the_token() -> None:
    from vllmctl.catalog.store import parse
    from vllmctl.ops.gated import decide

    asked: list[str] = []

    def ask(repo: str) -> Any:
        asked.append(repo)
        return SimpleNamespace(exists=True, gated=repo == "org/sql-lora")

    catalog = parse(Path("models.yaml"), AT_START.encode())
    assert decide(catalog.models, endpoint="http://hub", ask=ask).models == ["small"]
    # `gated: false` decides the model's own repo only: the adapter's is still asked
    assert asked == ["org/sql-lora"]
    plain = parse(Path("models.yaml"), SMALL.encode())
    assert decide(plain.models, endpoint="http://hub", ask=ask).models == []


def test_doctor_checks_an_adapters_repo_at_the_hub(sandbox: Sandbox) -> None:
    from vllmctl.catalog.store import parse
    from vllmctl.doctor.models import check_models

    # adapter repos hold adapter_config.json, not config.json
    sandbox.call(lambda: sandbox.hub.add_model("org/sql-lora", config=None, gated="manual"))
    sandbox.call(lambda: sandbox.hub.add_model("org/open-lora", config=None))
    text = (
        SMALL
        + "  lora:\n    - {name: sql, source: org/sql-lora}\n    - {name: open, source: org/open-lora}\n"
    )
    text += "    - {name: gone, source: org/no-such-lora}\n"
    catalog = parse(Path("models.yaml"), text.encode())
    report = Report()
    settings = SimpleNamespace(hf_endpoint=sandbox.hub_url)
    check_models(report, settings, catalog.models, token=None, gpus=None, hub=True)
    rows = {c.name: (c.status, c.detail) for c in report.checks if c.name.startswith("small adapter")}
    assert rows == {
        "small adapter sql": ("fail", "org/sql-lora: gated, and no usable HuggingFace token is stored"),
        "small adapter open": ("ok", "org/open-lora: public"),
        "small adapter gone": (
            "fail",
            "org/no-such-lora is not on the Hub (or is private and the token cannot see it)",
        ),
    }


# ------------------------------------------------------------------ test-completions' adapter


def test_model_colon_adapter_and_adapter_option(models_file: Path) -> None:
    from vllmctl.ops.adapters import model_id
    from vllmctl.settings import Settings

    models_file.write_text(AT_START)
    settings = Settings.resolve({"models_path": str(models_file)}, environ={})
    assert model_id(settings, "small:sql", None) == "sql"
    assert model_id(settings, "small", "sql") == "sql"
    assert model_id(settings, "small", None) == "small"
    assert model_id(settings, "other:thing", None) == "other:thing"  # not a models.yaml name
    with pytest.raises(UsageError, match=r"small has no LoRA adapter 'chat' in .* \(its adapters are sql\)"):
        model_id(settings, "small:chat", None)
    with pytest.raises(UsageError, match="give the adapter once"):
        model_id(settings, "small:sql", "chat")


# ------------------------------------------------------------------ on a cluster


@pytest.fixture(scope="module")
def lora_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path_factory.mktemp("lora"), SandboxConfig(lora=True, eso=False)) as sb:
        yield sb


@pytest.fixture
def on_lora(
    lora_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    namespace = f"lora-{request.node.name.replace('_', '-')[:40].strip('-')}"
    with release_on(lora_sandbox, monkeypatch, namespace, mini_chart_at("0.1.12", tmp_path), "0.1.12"):
        yield namespace


ON_CLUSTER = (
    SMALL
    + "  lora:\n"
    + "    - {name: sql, source: org/sql-lora}\n"
    + "    - {name: late, source: org/late-lora, atStart: false}\n"
)


def loaded(sb: Sandbox, namespace: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert sb.cluster is not None
        sb.call(sb.cluster.reconcile)
        adapter = sb.get("LoraAdapter", namespace, name, api_version=LA_API)
        if adapter and (adapter.get("status") or {}).get("loadedAdapters"):
            return adapter
        time.sleep(0.05)
    raise AssertionError(f"the controller never loaded {name}: {adapter}")


def test_install_serves_the_adapters_and_status_and_doctor_show_them(
    run: Run, models_file: Path, lora_sandbox: Sandbox, on_lora: str
) -> None:
    sb, ns = lora_sandbox, on_lora
    models_file.write_text(ON_CLUSTER)
    # The controller reads hf-token for every Hub adapter, so the model needs the token as
    # a gated one does: refused without one, nothing changed ...
    refused = run("install", "--yes", "--no-api-key")
    assert refused.exit_code == 2, refused.stderr
    assert "small is gated and no HuggingFace token is stored" in refused.stderr, refused.stderr
    assert sb.get("Namespace", None, ns) is None or not sb.list("Deployment", ns)

    # ... and a first install with VLLM_HF_TOKEN creates the namespace and stores it.
    installed = run("install", "--yes", "--no-api-key", env={"VLLM_HF_TOKEN": "hf_" + "a1" * 17})
    assert installed.exit_code == 0, installed.stderr
    assert sb.get("Secret", ns, "hf-token") is not None
    doctor = run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes")
    row = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "lora")
    assert (row["status"], row["detail"]) == (
        "ok",
        "2 adapters on small; the cluster serves LoraAdapter (production-stack.vllm.ai/v1alpha1)",
    )
    adapter = loaded(sb, ns, "vllm-small-late")
    assert adapter["status"]["phase"] == "Ready"

    listed = run("list-api-models", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    cards = {c["id"]: c.get("parent") for c in json.loads(listed.stdout)}
    assert cards["sql"] == "small" and cards["late"] == "small" and cards["small"] is None
    table = run("list-api-models").stdout
    assert "PARENT" in table.splitlines()[0] and any(
        line.split()[:2] == ["sql", "small"] for line in table.splitlines()
    )

    answer = run("test-completions", "small:sql", "hello adapter", "--no-stream")
    assert answer.exit_code == 0, answer.stderr
    assert answer.stdout.startswith("hello adapter") or "echo: hello adapter" in answer.stdout
    by_option = run("test-completions", "small", "hi", "--adapter", "late", "--no-stream")
    assert by_option.exit_code == 0, by_option.stderr
    # chat takes MODEL:ADAPTER too, checked against what the router lists.
    chat = run("chat", "small:sql", "-o", "json", input="hello adapter\n")
    assert chat.exit_code == 0, chat.stderr
    (reply,) = [json.loads(line) for line in chat.stdout.splitlines()]
    assert reply["model"] == "sql" and reply["text"].startswith("echo: hello adapter")
    unknown = run("chat", "small:nope", input="hi\n")
    assert unknown.exit_code == 2 and "small has no LoRA adapter 'nope'" in unknown.stderr

    status = json.loads(run("status", "-o", "json").stdout)
    (model,) = status["models"]
    assert [(a["name"], a["loaded_by"], a["loaded_on"]) for a in model["lora"]["adapters"]] == [
        ("sql", "engine start", None),
        ("late", "controller", 1),
    ]
    assert model["lora"]["problem"] is None
    assert status["comparison"]["serving_not_configured"] == []
    whole = run("status")
    text = whole.stdout
    assert "late" in text and "controller" in text
    # The adapters are models.yaml's (its lora:), not ids "served by the router, not in models.yaml".
    assert "not in models.yaml" not in text + whole.stderr
    assert whole.exit_code == 0, text + whole.stderr


def test_doctor_warns_when_the_lora_kind_is_not_served(
    run: Run, models_file: Path, cluster: ClusterEnv
) -> None:
    models_file.write_text(ON_CLUSTER)
    doctor = run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes")
    row = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "lora")
    assert row["status"] == "warn"
    assert (
        "small load adapters through the LoRA controller, and the cluster does not serve LoraAdapter"
        in (row["detail"])
    )


def test_install_stops_before_helm_without_an_adapters_claim() -> None:
    from vllmctl.catalog.store import parse
    from vllmctl.features.contexts import BeforeChange
    from vllmctl.features.lora_cluster import require_present

    catalog = parse(Path("models.yaml"), ALL_KINDS.encode())
    listed = {"persistentvolumeclaim": ["persistentvolumeclaim/other"], "secret": ["secret/hf-token"]}
    kubectl = SimpleNamespace(names=lambda kind, namespace: listed[kind])
    context = BeforeChange(SimpleNamespace(namespace="ns"), catalog.models, kubectl, lambda *a: None)
    with pytest.raises(UsageError) as caught:
        require_present(context)
    assert caught.value.message.startswith("1 object the LoRA adapters need is not in namespace ns")
    assert caught.value.details == ["PersistentVolumeClaim adapters (adapters of small)"]
    listed["persistentvolumeclaim"].append("persistentvolumeclaim/adapters")
    require_present(context)  # all there: nothing said


# ------------------------------------------------------------------ adapter names are model ids

OTHER = "- name: other\n  modelURL: Qwen/Qwen2.5-0.5B-Instruct\n  gated: false\n  requestGPU: 0\n"


@pytest.mark.parametrize(
    ("text", "where", "clash"),
    [
        (
            SMALL + "  lora:\n    - {name: small, source: org/a}\n",
            "8:14: models[0] (small).lora[0].name",
            "this model's name (line 1)",
        ),
        (
            SMALL + "  lora:\n    - {name: sql, source: org/a}\n    - {name: other, source: org/b}\n" + OTHER,
            "9:14: models[0] (small).lora[1].name",
            "the name of model other (line 10)",
        ),
        (
            SMALL
            + "  lora:\n    - {name: sql, source: org/a}\n"
            + OTHER
            + "  lora:\n    - {name: sql, source: org/b}\n",
            "14:14: models[1] (other).lora[0].name",
            "the adapter name of model small (line 8)",
        ),
    ],
)
def test_an_adapter_name_that_is_already_a_model_id_is_refused_at_it(
    run: Run, models_file: Path, text: str, where: str, clash: str
) -> None:
    models_file.write_text(text)
    result = run("validate")
    assert result.exit_code == 2
    (line,) = [line for line in result.stderr.splitlines() if "is already" in line]
    assert line.strip().startswith(f"models.yaml:{where}: the adapter name "), line
    assert f"is already {clash}; it is a model id in the API" in line, line
    assert "Traceback" not in result.stderr


def test_a_mistyped_adapter_key_gets_a_did_you_mean(run: Run, models_file: Path) -> None:
    models_file.write_text(SMALL + "  lora:\n    - {name: sql, source: org/a, atStrt: false}\n")
    result = run("validate")
    assert result.exit_code == 2
    assert (
        "models.yaml:8:42: models[0] (small).lora: "
        "unknown key 'atStrt' in an adapter; did you mean 'atStart'?" in result.stderr
    )


def test_without_the_hub_the_warning_names_the_adapter_repos_it_could_not_ask(
    run: Run, models_file: Path, cluster: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # refused at once: the offline path
    models_file.write_text(AT_START)  # the model has gated: false; only its adapter's repo is asked
    planned = run("plan")
    warning = next(
        line for line in planned.stderr.splitlines() if "could not ask the HuggingFace Hub" in line
    )
    assert "whether the repos of adapter sql of small (org/sql-lora) are gated" in warning, warning
    assert "models without `gated:`" not in warning and "Mark each model" not in warning
    assert "retry when the Hub is reachable" in warning
