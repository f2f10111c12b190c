"""The models.yaml commands as a user types them (in-process through click's runner)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, Run

LLAMA = ("--name", "llama3", "--model-url", "meta-llama/Llama-3.1-8B-Instruct")


def test_list_models_without_a_file_hints_and_succeeds(run: Run) -> None:
    result = run("list-models")
    assert result.exit_code == 0
    assert "cp models.example.yaml models.yaml" in result.stderr
    assert result.stdout == ""


def test_add_model_creates_the_file_from_the_example(run: Run, models_file: Path) -> None:
    result = run("add-model", "--yes", *LLAMA, "--max-model-len", "8192", "--dtype", "bfloat16")
    assert result.exit_code == 0, result.stderr
    example = (REPO / "models.example.yaml").read_text()
    assert models_file.read_text() == example + (
        "- name: llama3\n"
        "  modelURL: meta-llama/Llama-3.1-8B-Instruct\n"
        "  replicaCount: 1\n"
        "  requestCPU: 6\n"
        "  requestMemory: 16Gi\n"
        "  requestGPU: 1\n"
        "  pvcStorage: 50Gi\n"
        "  vllmConfig:\n"
        "    maxModelLen: 8192\n"
        "    dtype: bfloat16\n"
    )
    assert "created models.yaml from models.example.yaml" in result.stderr


def test_list_models_table_and_json(run: Run) -> None:
    run("add-model", "-y", *LLAMA, "--gpus", "2", "--replicas", "3", "--memory", "32Gi", "--storage", "100Gi")
    table = run("list-models")
    assert table.stdout.splitlines() == [
        "NAME     MODEL URL                          GPUS   REPLICAS   MEMORY   STORAGE",
        "llama3   meta-llama/Llama-3.1-8B-Instruct   2      3          32Gi     100Gi",
    ]
    data = json.loads(run("list-models", "-o", "json").stdout)
    assert data == [
        {
            "name": "llama3",
            "modelURL": "meta-llama/Llama-3.1-8B-Instruct",
            "replicaCount": 3,
            "requestCPU": 6,
            "requestMemory": "32Gi",
            "requestGPU": 2,
            "pvcStorage": "100Gi",
        }
    ]


def test_global_options_work_before_and_after_the_command(run: Run, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.yaml"
    assert run("--models", str(other), "add-model", "-y", *LLAMA).exit_code == 0
    assert json.loads(run("list-models", "--models", str(other), "-o", "json").stdout)[0]["name"] == "llama3"
    assert json.loads(run("-o", "json", "--models", str(other), "list-models").stdout)[0]["name"] == "llama3"


def test_models_file_from_the_environment(run: Run, tmp_path: Path) -> None:
    other = tmp_path / "env.yaml"
    assert run("add-model", "-y", *LLAMA, env={"VLLM_MODELS_FILE": str(other)}).exit_code == 0
    assert "llama3" in other.read_text()


def test_duplicate_names_are_refused(run: Run, models_file: Path) -> None:
    run("add-model", "-y", *LLAMA)
    before = models_file.read_bytes()
    result = run("add-model", "-y", *LLAMA)
    assert result.exit_code == 2
    assert "--name: 'llama3' is already in models.yaml; choose another name." in result.stderr
    assert models_file.read_bytes() == before


def test_add_model_without_a_required_flag_under_yes_names_the_flag(run: Run, models_file: Path) -> None:
    result = run("add-model", "--yes", "--name", "x")
    assert result.exit_code == 2
    assert "--model-url is needed and --yes was given" in result.stderr
    assert not models_file.exists()


def test_bad_flag_values_name_the_flag_and_the_fix(run: Run, models_file: Path) -> None:
    cases = {
        ("--gpus", "two"): "--gpus: must be a whole number",
        ("--memory", "16GB"): "--memory: '16GB' is not a Kubernetes quantity; use a binary suffix like 16Gi; "
        "did you mean '16Gi'?",
        ("--dtype", "fp7"): "--dtype: 'fp7' is not a dtype vLLM accepts",
        ("--gpu-memory-utilization", "1.5"): "--gpu-memory-utilization: must be more than 0 and at most 1",
        ("--name", "Llama_3"): "--name: 'Llama_3' is not a valid name",
    }
    for (flag, value), message in cases.items():
        args = ["add-model", "-y", *LLAMA, flag, value]
        result = run(*args)
        assert result.exit_code == 2, (flag, result.stderr)
        assert message in result.stderr, result.stderr
    assert not models_file.exists()


def test_cross_field_problems_are_refused_before_writing(run: Run, models_file: Path) -> None:
    run("add-model", "-y", "--name", "first", "--model-url", "org/first")
    before = models_file.read_bytes()
    result = run("add-model", "-y", *LLAMA, "--gpus", "2", "--tensor-parallel-size", "4")
    assert result.exit_code == 2
    assert "nothing was written" in result.stderr
    assert "tensorParallelSize: 4 does not divide requestGPU 2" in result.stderr
    assert models_file.read_bytes() == before


def test_remove_model(run: Run, models_file: Path) -> None:
    run("add-model", "-y", *LLAMA)
    run("add-model", "-y", "--name", "other", "--model-url", "org/other")
    result = run("remove-model", "llama3", "--yes")
    assert result.exit_code == 0
    assert json.loads(run("list-models", "-o", "json").stdout)[0]["name"] == "other"


def test_remove_model_unknown_name_suggests(run: Run, models_file: Path) -> None:
    run("add-model", "-y", *LLAMA)
    result = run("remove-model", "llama", "-y")
    assert result.exit_code == 2
    assert "no model named 'llama' in models.yaml; did you mean 'llama3'? (models: llama3)" in result.stderr


def test_remove_model_needs_a_name_or_a_terminal(run: Run) -> None:
    run("add-model", "-y", *LLAMA)
    result = run("remove-model", "-y")
    assert result.exit_code == 2
    assert "give the model to remove: vllmctl remove-model NAME" in result.stderr


def test_remove_model_asks_for_confirmation_and_fails_without_a_terminal(run: Run, models_file: Path) -> None:
    run("add-model", "-y", *LLAMA)
    before = models_file.read_bytes()
    result = run("remove-model", "llama3")
    assert result.exit_code == 2
    assert "add --yes" in result.stderr
    assert models_file.read_bytes() == before


def test_set_model_and_show_model(run: Run, models_file: Path) -> None:
    run("add-model", "-y", *LLAMA)
    result = run("set-model", "llama3", "replicaCount=2", "vllmConfig.maxModelLen=8192", "gated=true")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(run("show-model", "llama3", "-o", "json").stdout)
    assert shown["replicaCount"] == 2
    assert shown["vllmConfig"] == {"maxModelLen": 8192}
    assert shown["gated"] is True
    table = run("show-model", "llama3").stdout
    assert "vllmConfig.maxModelLen   8192" in table


def test_set_model_refuses_bad_values_and_unknown_keys(run: Run, models_file: Path) -> None:
    run("add-model", "-y", *LLAMA)
    before = models_file.read_bytes()
    for assignment, message in {
        "replicas=2": "unknown key 'replicas'; did you mean 'replicaCount'?",
        "vllmConfig.dtype=fp8": "'fp8' is not a dtype vLLM accepts",
        "replicaCount=": "give a value after '='",
        "=3": "write KEY.PATH=VALUE",
        "name.first=x": "name is not a mapping",
        "replicaCount=[1": "the value is not valid YAML",
    }.items():
        result = run("set-model", "llama3", assignment)
        assert result.exit_code == 2, assignment
        assert message in result.stderr, (assignment, result.stderr)
        assert "Traceback" not in result.stderr
    assert models_file.read_bytes() == before


def test_default_fields_are_marked_in_show_model(run: Run, models_file: Path) -> None:
    models_file.write_text("- name: tiny\n  modelURL: org/tiny\n")
    table = run("show-model", "tiny").stdout
    assert "replicaCount    1                                (default)" in table or "(default)" in table
    assert json.loads(run("show-model", "tiny", "-o", "json").stdout)["pvcStorage"] == "50Gi"


def test_validate(run: Run, models_file: Path) -> None:
    run("add-model", "-y", *LLAMA)
    ok = run("validate")
    assert ok.exit_code == 0
    assert "models.yaml is valid: 1 model, for chart 0.1.12 (from default: the newest chart" in ok.stderr
    models_file.write_text("- name: a\n  modelURL: org/a\n  replicaCount: -1\n  dtype: auto\n")
    bad = run("validate")
    assert bad.exit_code == 2
    assert "models.yaml has 2 problems" in bad.stderr
    assert "models.yaml:3:17: models[0] (a).replicaCount: must be 0 or more, not -1" in bad.stderr
    assert "models.yaml:4:3: models[0] (a).dtype: unknown key 'dtype'" in bad.stderr
    data = json.loads(run("validate", "-o", "json").stdout)
    assert data["valid"] is False and len(data["problems"]) == 2


def test_validate_applies_the_chart_versions_rules(run: Run, models_file: Path, tmp_path: Path) -> None:
    # What render would refuse for the chart version, validate refuses too, at the key.
    from tests.sandbox.fixtures import mini_chart_at

    models_file.write_text(
        "- name: a\n  modelURL: org/a\n  modelRevision: main\n  tolerations: []\n  pdb: true\n"
    )
    old = run("validate", env={"VLLM_CHART_VERSION": "0.1.8"})
    assert old.exit_code == 2
    assert "Checked for chart 0.1.8 (from VLLM_CHART_VERSION)." in old.stderr
    assert "models.yaml has 3 problems" in old.stderr
    assert (
        "models.yaml:3:3: models[0] (a).modelRevision: modelRevision needs chart 0.1.12 or newer (the "
        "chart silently ignores it before); the chart version is 0.1.8. Raise the chart version or "
        "remove modelRevision."
    ) in old.stderr
    assert "models.yaml:4:3: models[0] (a).tolerations: tolerations needs chart 0.1.11" in old.stderr
    assert "models.yaml:5:3: models[0] (a).pdb: pdb needs chart 0.1.11" in old.stderr
    assert run("render", env={"VLLM_CHART_VERSION": "0.1.8"}).exit_code == 2  # the same verdict
    # A local chart's own version counts, and is named.
    chart = mini_chart_at("0.1.11", tmp_path)
    local = run("validate", "-o", "json", env={"VLLM_CHART": str(chart)})
    assert local.exit_code == 2
    data = json.loads(local.stdout)
    assert (data["chart"], data["chartSource"]) == ("0.1.11", str(chart / "Chart.yaml"))
    assert len(data["problems"]) == 1 and "modelRevision needs chart 0.1.12" in data["problems"][0]
    fine = run("validate")  # the newest tested chart reads them all
    assert fine.exit_code == 0
    assert "valid: 1 model, for chart 0.1.12" in fine.stderr


def test_yaml_output(run: Run) -> None:
    run("add-model", "-y", *LLAMA)
    assert run("list-models", "-o", "yaml").stdout.startswith("- name: llama3\n  modelURL: meta-llama/")


def test_config_shows_sources_and_hides_secrets(run: Run) -> None:
    result = run(
        "-n",
        "team-a",
        "config",
        "-o",
        "json",
        env={"VLLM_HF_TOKEN": "hf_canary_1234567890", "VLLM_CHART_VERSION": "0.1.12"},
    )
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["namespace"] == {
        "name": "namespace",
        "env": "VLLM_NAMESPACE",
        "value": "team-a",
        "source": "flag",
    }
    assert rows["chart_version"]["value"] == "0.1.12" and rows["chart_version"]["source"] == "env"
    assert rows["model_tag"]["value"] == "latest" and rows["model_tag"]["source"] == "default"
    assert rows["hf_token"]["value"] == "<set, hidden>"
    assert "hf_canary" not in result.stdout + result.stderr
    table = run("config", env={"VLLM_API_KEY": "sk-canary"}).stdout
    assert "sk-canary" not in table and "<set, hidden>" in table


def test_unknown_command_is_a_usage_error(run: Run) -> None:
    result = run("list-modles")
    assert result.exit_code == 2
    assert "No such command 'list-modles'. Did you mean 'list-models'?" in result.stderr


def test_set_model_warns_when_the_chart_would_refuse_the_key(run: Run, models_file: Path) -> None:
    """A key of a newer chart is written (models.yaml may be readying a chart upgrade), but
    said at once, not first by validate or install."""
    models_file.write_text("- name: qwen\n  modelURL: Qwen/Qwen2.5-1.5B-Instruct\n  requestMemory: 16Gi\n")
    result = run(
        "set-model",
        "qwen",
        "kvCache.cpuOffload=4Gi",
        "kvCache.logLevel=INFO",
        env={"VLLM_CHART_VERSION": "0.1.8"},
    )
    assert result.exit_code == 0, result.stderr
    assert "logLevel: INFO" in models_file.read_text()
    assert "models.yaml:" in result.stderr and "(qwen).kvCache" in result.stderr
    assert "needs chart 0.1.10 or newer" in result.stderr
    assert "validate, render and install refuse it with chart 0.1.8" in result.stderr
    quiet = run("set-model", "qwen", "replicaCount=2", env={"VLLM_CHART_VERSION": "0.1.12"})
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr, quiet.stderr
