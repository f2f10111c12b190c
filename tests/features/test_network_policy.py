"""Network policy (issue 8, item 9): NetworkPolicies through the chart's extraObjects, as
settings (or an environment's `networkPolicy:`); checked, made by the chart, and doctor's
hint on whether the cluster's network plugin enforces them."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Run
from tests.sandbox.fixtures import ClusterEnv, mini_chart_at
from tests.sandbox.kube.controllers import R
from tests.sandbox.kube.selectors import match_labels_selector
from vllmctl.catalog.store import parse
from vllmctl.core.errors import CatalogError, UsageError
from vllmctl.render.plan import make_plan
from vllmctl.render.values import DeployedLabels, default_render_input, packaged_templates, render
from vllmctl.settings import Settings

# `gated: false`: a made-up repo the Hub does not show would need the token.
SMALL = (
    "- name: small\n  modelURL: org/small\n  gated: false\n"
    "  requestGPU: 0\n  requestCPU: 1\n  requestMemory: 1Gi\n"
)
NEW_CHART = {"VLLM_CHART_VERSION": "0.1.12"}
ON = {**NEW_CHART, "VLLM_NETWORK_POLICY": "true", "VLLM_NETWORK_POLICY_NAMESPACES": "apps, batch"}
ENGINES, ROUTER = "vllm-engines-from-router", "vllm-router-from-allowed"
PORT = [{"protocol": "TCP", "port": 8000}]


def rendered(models: str = SMALL, templates: Path | None = None, **env: str) -> Any:
    settings = Settings.resolve({}, environ={"VLLM_MODEL_TAG": "v0.11.0", **env})
    catalog = parse(Path("models.yaml"), models.encode())
    return render(catalog.models, default_render_input(settings, templates_dir=templates))


def policies(models: str = SMALL, **env: str) -> dict[str, dict[str, Any]]:
    objects = rendered(models, **env).values["extraObjects"]
    assert [o["kind"] for o in objects] == ["NetworkPolicy", "NetworkPolicy"]
    return {o["metadata"]["name"]: o for o in objects}


def refusal(**env: str) -> str:
    with pytest.raises(UsageError) as caught:
        rendered(**env)
    return "\n".join([caught.value.message, *caught.value.details])


def namespaces(policy: dict[str, Any]) -> list[str]:
    """The namespaces a router policy admits."""
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    selector = peer["namespaceSelector"]
    if "matchLabels" in selector:
        return [selector["matchLabels"]["kubernetes.io/metadata.name"]]
    (expression,) = selector["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name" and expression["operator"] == "In"
    return list(expression["values"])


# --- settings: good values ------------------------------------------------------------------


def test_off_by_default_nothing_reaches_the_chart() -> None:
    assert "extraObjects" not in rendered(**NEW_CHART).values


def test_engines_from_the_router_and_the_router_from_the_listed_namespaces() -> None:
    got = policies(**ON)
    engines, router = got[ENGINES], got[ROUTER]
    router_pods = {
        "matchLabels": {"vllmctl.io/release": "vllm"},
        "matchExpressions": [{"key": "helm-release-name", "operator": "DoesNotExist"}],
    }
    assert engines["spec"] == {
        "podSelector": {"matchLabels": {"helm-release-name": "vllm"}},
        "policyTypes": ["Ingress"],  # egress stays open: the Hub, S3, DNS
        "ingress": [{"from": [{"podSelector": router_pods}], "ports": PORT}],
    }
    assert router["spec"]["podSelector"] == router_pods
    assert router["spec"]["policyTypes"] == ["Ingress"]
    assert router["spec"]["ingress"][0]["ports"] == PORT
    assert namespaces(router) == ["vllm", "apps", "batch"]  # its own namespace first
    for policy in got.values():
        assert policy["metadata"]["namespace"] == "vllm"
        assert policy["metadata"]["labels"] == {
            "vllmctl.io/managed-by": "vllmctl",
            "vllmctl.io/release": "vllm",
        }


def test_an_empty_list_admits_only_the_release_namespace() -> None:
    got = policies(**{**ON, "VLLM_NETWORK_POLICY_NAMESPACES": "", "VLLM_NAMESPACE": "serving"})
    assert namespaces(got[ROUTER]) == ["serving"]
    assert got[ROUTER]["spec"]["ingress"][0]["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "serving"}
    }


def test_monitoring_admits_prometheus_to_engines_and_router() -> None:
    got = policies(**ON, VLLM_MONITORING="true")
    scrape = {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}
    assert got[ENGINES]["spec"]["ingress"][1] == {**scrape, "ports": PORT}
    assert namespaces(got[ROUTER]) == ["vllm", "apps", "batch", "monitoring"]
    other = policies(**ON, VLLM_MONITORING="true", VLLM_NETWORK_POLICY_PROMETHEUS_NAMESPACE="apps")
    assert namespaces(other[ROUTER]) == ["vllm", "apps", "batch"]  # listed once


def test_an_ingress_admits_the_controller_namespace() -> None:
    got = policies(
        **ON, VLLM_INGRESS_HOST="vllm.example.com", VLLM_NETWORK_POLICY_INGRESS_NAMESPACE="ingress-nginx"
    )
    assert namespaces(got[ROUTER]) == ["vllm", "apps", "batch", "ingress-nginx"]


def test_engines_that_talk_to_each_other_admit_their_release_engines() -> None:
    ray = SMALL + "  lmcacheConfig: {enabled: true}\n"
    rules = policies(ray, **ON)[ENGINES]["spec"]["ingress"]
    assert rules[1] == {"from": [{"podSelector": {"matchLabels": {"helm-release-name": "vllm"}}}]}


def test_a_release_deployed_with_the_chart_labels_is_selected_by_the_chart_router_labels() -> None:
    settings = Settings.resolve({}, environ={"VLLM_MODEL_TAG": "v0.11.0", **ON})
    catalog = parse(Path("models.yaml"), SMALL.encode())
    given = default_render_input(settings, deployed_labels=DeployedLabels(None, None))
    objects = render(catalog.models, given).values["extraObjects"]
    assert objects[1]["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/instance": "vllm", "app.kubernetes.io/component": "router"}
    }


@pytest.mark.parametrize("service_type", ["NodePort", "LoadBalancer"])
def test_a_router_exposed_outside_the_cluster_is_warned_about(service_type: str) -> None:
    warnings = rendered(**ON, VLLM_ROUTER_SERVICE_TYPE=service_type).warnings
    assert any(f"VLLM_ROUTER_SERVICE_TYPE={service_type}: the router's network policy" in w for w in warnings)


# --- settings: bad values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"VLLM_CHART_VERSION": "0.1.9"},
            "VLLM_NETWORK_POLICY needs chart 0.1.10 or newer (the policies reach the cluster through "
            "the chart's extraObjects, which older charts do not have and would ignore); "
            "VLLM_CHART_VERSION is 0.1.9.",
        ),
        (
            {"VLLM_NETWORK_POLICY_NAMESPACES": None},
            "VLLM_NETWORK_POLICY is on but VLLM_NETWORK_POLICY_NAMESPACES is not set",
        ),
        ({"VLLM_NETWORK_POLICY_NAMESPACES": "Apps"}, "'Apps' is not a namespace name"),
        ({"VLLM_NETWORK_POLICY_NAMESPACES": "team_a"}, "DNS-1123 label rule"),
        ({"VLLM_NETWORK_POLICY_NAMESPACES": "a.b"}, "'a.b' is not a namespace name"),
        ({"VLLM_NETWORK_POLICY_NAMESPACES": "x" * 64}, "a namespace name has at most 63"),
        ({"VLLM_NETWORK_POLICY_NAMESPACES": "apps,,batch"}, "VLLM_NETWORK_POLICY_NAMESPACES: an empty name"),
        (
            {"VLLM_INGRESS_HOST": "vllm.example.com"},
            "set VLLM_NETWORK_POLICY_INGRESS_NAMESPACE to the namespace your ingress controller runs in",
        ),
        (
            {"VLLM_INGRESS_HOST": "vllm.example.com", "VLLM_NETWORK_POLICY_INGRESS_NAMESPACE": "-nginx"},
            "VLLM_NETWORK_POLICY_INGRESS_NAMESPACE: '-nginx' is not a namespace name",
        ),
        (
            {"VLLM_MONITORING": "1", "VLLM_NETWORK_POLICY_PROMETHEUS_NAMESPACE": "Prom"},
            "VLLM_NETWORK_POLICY_PROMETHEUS_NAMESPACE: 'Prom' is not a namespace name",
        ),
        ({"VLLM_ROUTER_ENABLED": "false"}, "but VLLM_ROUTER_ENABLED is false: nothing could reach them"),
        ({"VLLM_NETWORK_POLICY": "sometimes"}, "VLLM_NETWORK_POLICY='sometimes' is not a boolean"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str | None], said: str) -> None:
    given = {key: value for key, value in {**ON, **env}.items() if value is not None}
    assert said in refusal(**given)


def test_every_problem_is_reported_at_once() -> None:
    message = refusal(
        **{**ON, "VLLM_CHART_VERSION": "0.1.8", "VLLM_NETWORK_POLICY_NAMESPACES": "Apps"},
        VLLM_INGRESS_HOST="vllm.example.com",
    )
    head, *lines = message.splitlines()
    assert head == "3 problems with the network policy settings:"
    assert [line.split(" ", 1)[0] for line in lines] == [
        "VLLM_NETWORK_POLICY",
        "VLLM_NETWORK_POLICY_NAMESPACES:",
        "VLLM_INGRESS_HOST",
    ]


def test_the_namespace_settings_are_read_only_when_the_policy_is_on() -> None:
    assert "extraObjects" not in rendered(**{**ON, "VLLM_NETWORK_POLICY": "false"}).values


def test_a_copied_template_that_predates_the_setting_is_caught(tmp_path: Path) -> None:
    old = (packaged_templates() / "values.yaml.j2").read_text()
    (tmp_path / "values.yaml.j2").write_text(old.replace("extraObjects:", "ignoredObjects:"))
    with pytest.raises(CatalogError, match=r"the rendered values have extraObjects = null"):
        rendered(templates=tmp_path, **ON)


def test_plan_names_the_policies_and_rolls_no_engine() -> None:
    before, after = rendered(**NEW_CHART).values, rendered(**ON).values
    plan = make_plan("vllm", "ns", before, after)
    assert [p for p, _, _ in plan.other] == ["extraObjects"]  # no servingEngineSpec path: no pod rolls
    assert plan.lines()[1:] == [
        f"  ~ extraObjects: + NetworkPolicy {ENGINES}, + NetworkPolicy {ROUTER} (-o json shows them)"
    ]
    narrower = rendered(**{**ON, "VLLM_NETWORK_POLICY_NAMESPACES": "apps"}).values
    assert make_plan("vllm", "ns", after, narrower).lines()[1:] == [
        f"  ~ extraObjects: ~ NetworkPolicy {ROUTER} (-o json shows them)"
    ]


# --- vllmctl.yaml: an environment's networkPolicy -----------------------------------------------


def test_an_environment_turns_it_on(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(SMALL)
    (tmp_path / "vllmctl.yaml").write_text(
        "environments:\n"
        "  prod:\n"
        "    chartVersion: 0.1.12\n"
        "    networkPolicy:\n"
        "      allowedNamespaces: [apps]\n"
        "      ingressNamespace: ingress-nginx\n"
        "      prometheusNamespace: prom\n"
        "  dev:\n"
        "    networkPolicy: {allowedNamespaces: []}\n"
    )
    base = {"VLLM_MODELS_FILE": str(tmp_path / "models.yaml")}
    prod = Settings.resolve({}, environ={**base, "VLLM_ENV": "prod"})
    assert prod.network_policy is True
    assert prod.network_policy_namespaces == "apps"
    assert prod.network_policy_ingress_namespace == "ingress-nginx"
    assert prod.network_policy_prometheus_namespace == "prom"
    assert prod.source("network_policy") == f"{tmp_path / 'vllmctl.yaml'} (env prod)"
    dev = Settings.resolve({}, environ={**base, "VLLM_ENV": "dev"})
    assert (dev.network_policy, dev.network_policy_namespaces) == (True, "")
    # An env variable wins, as for every setting.
    off = Settings.resolve({}, environ={**base, "VLLM_ENV": "prod", "VLLM_NETWORK_POLICY": "false"})
    assert off.network_policy is False


def test_environment_problems_name_their_place(tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(SMALL)
    (tmp_path / "vllmctl.yaml").write_text(
        "environments:\n"
        "  a:\n"
        "    networkPolicy: true\n"
        "  b:\n"
        "    networkPolicy:\n"
        "      allowedNamespace: [apps]\n"
        "  c:\n"
        "    networkPolicy: {allowedNamespaces: [Apps, ok], ingressNamespace: [x]}\n"
    )
    with pytest.raises(CatalogError) as caught:
        Settings.resolve({}, environ={"VLLM_MODELS_FILE": str(tmp_path / "models.yaml"), "VLLM_ENV": "a"})
    assert [d.split(str(tmp_path) + "/", 1)[-1] for d in caught.value.details] == [
        "vllmctl.yaml:3:20: environments.a.networkPolicy: must be a mapping; write e.g. "
        "networkPolicy: {allowedNamespaces: [apps]} ([]: only the release's namespace)",
        "vllmctl.yaml:6:7: environments.b.networkPolicy.allowedNamespace: unknown key "
        "'allowedNamespace'; did you mean 'allowedNamespaces'?",
        "vllmctl.yaml:6:7: environments.b.networkPolicy: allowedNamespaces is missing: list the "
        "namespaces whose pods may call the router, or [] to admit only the release's own namespace",
        "vllmctl.yaml:8:41: environments.c.networkPolicy.allowedNamespaces: 'Apps' is not a namespace "
        "name: lower-case letters, digits and '-', starting and ending with a letter or digit "
        "(Kubernetes' DNS-1123 label rule)",
        "vllmctl.yaml:8:70: environments.c.networkPolicy.ingressNamespace: must be a namespace name",
    ]


# --- what the chart makes (helm template on the mini chart) ------------------------------------


def manifests(run: Run, models_file: Path, **env: str) -> list[dict[str, Any]]:
    if shutil.which("helm") is None:
        pytest.skip("scripts/test puts the pinned helm on PATH")
    models_file.write_text(SMALL)
    result = run("template", env={"VLLM_MODEL_TAG": "v0.10.1", **env})
    assert result.exit_code == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_helm_template_makes_both_policies_selecting_the_real_pods(
    run: Run, models_file: Path, tmp_path: Path
) -> None:
    chart = str(mini_chart_at("0.1.12", tmp_path))
    docs = manifests(run, models_file, VLLM_CHART=chart, **ON)
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    engines = objects[("NetworkPolicy", ENGINES)]["spec"]
    router = objects[("NetworkPolicy", ROUTER)]["spec"]
    engine_pods = objects[("Deployment", "vllm-small-deployment-vllm")]["spec"]["template"]["metadata"][
        "labels"
    ]
    router_pods = objects[("Deployment", "vllm-deployment-router")]["spec"]["template"]["metadata"]["labels"]
    # Each policy holds the pods it is meant for, and only those.
    assert match_labels_selector(engines["podSelector"], engine_pods)
    assert not match_labels_selector(engines["podSelector"], router_pods)
    assert match_labels_selector(router["podSelector"], router_pods)
    assert not match_labels_selector(router["podSelector"], engine_pods)
    # The engines admit the router's pods, not each other.
    (peer,) = engines["ingress"][0]["from"]
    assert match_labels_selector(peer["podSelector"], router_pods)
    assert not match_labels_selector(peer["podSelector"], engine_pods)
    assert namespaces({"spec": router}) == ["vllm", "apps", "batch"]
    # Another release's pods in the namespace are none of these.
    other = {**engine_pods, "helm-release-name": "other", "vllmctl.io/release": "other"}
    assert not match_labels_selector(engines["podSelector"], other)


def test_helm_template_refuses_before_chart_0_1_10(run: Run, models_file: Path, tmp_path: Path) -> None:
    if shutil.which("helm") is None:
        pytest.skip("scripts/test puts the pinned helm on PATH")
    models_file.write_text(SMALL)
    chart = str(mini_chart_at("0.1.8", tmp_path))
    result = run("template", env={**ON, "VLLM_CHART": chart, "VLLM_CHART_VERSION": "0.1.8"})
    assert result.exit_code == 2
    assert "error: VLLM_NETWORK_POLICY needs chart 0.1.10 or newer" in result.stderr
    assert (
        "VLLM_CHART_VERSION is 0.1.8. Raise the chart version, or set VLLM_NETWORK_POLICY=false."
        in result.stderr
    )


# --- on the sandbox -----------------------------------------------------------------------------


def network_check(run: Run) -> dict[str, Any]:
    result = run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes")
    report = json.loads(result.stdout)
    return next(c for c in report["checks"] if c["name"] == "network policy")  # type: ignore[no-any-return]


def test_install_makes_the_policies_and_upgrade_without_the_setting_removes_them(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb, ns = cluster.sandbox, cluster.namespace
    monkeypatch.setenv("VLLM_CHART", str(mini_chart_at("0.1.12", tmp_path)))
    for key, value in ON.items():
        monkeypatch.setenv(key, value)
    models_file.write_text(SMALL)
    installed = run("install", "--yes", "--no-api-key")
    assert installed.exit_code == 0, installed.stderr
    found = {p["metadata"]["name"]: p for p in sb.list("NetworkPolicy", ns)}
    assert sorted(found) == [ENGINES, ROUTER]
    assert namespaces(found[ROUTER]) == [ns, "apps", "batch"]
    # helm sets app.kubernetes.io/managed-by=Helm on whatever it creates: vllmctl's mark has its own key.
    labels = found[ENGINES]["metadata"]["labels"]
    assert (labels["app.kubernetes.io/managed-by"], labels["vllmctl.io/managed-by"]) == ("Helm", "vllmctl")
    engine_pod = next(p for p in sb.list("Pod", ns) if "helm-release-name" in p["metadata"]["labels"])
    assert match_labels_selector(found[ENGINES]["spec"]["podSelector"], engine_pod["metadata"]["labels"])

    upgraded = run("upgrade", "--yes", "--no-api-key", env={"VLLM_NETWORK_POLICY": "false"})
    assert upgraded.exit_code == 0, upgraded.stderr
    assert sb.list("NetworkPolicy", ns) == []


def test_doctor_names_the_network_plugin_as_a_hint(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = cluster.sandbox
    monkeypatch.setenv("VLLM_CHART", str(mini_chart_at("0.1.12", tmp_path)))
    models_file.write_text(SMALL)
    assert "network policy" not in json.dumps(  # off, and nothing set: doctor says nothing
        json.loads(run("doctor", "-o", "json", "--offline", "--secret-backend", "kubernetes").stdout)
    )
    for key, value in ON.items():
        monkeypatch.setenv(key, value)
    check = network_check(run)
    assert check["status"] == "warn"
    assert "no known network plugin among the DaemonSets in kube-system and calico-system" in check["detail"]
    assert "vllmctl cannot detect enforcement reliably" in check["detail"]

    def daemonset(name: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name}, "spec": {}}

    create = functools.partial(sb.call, sb.store.create, R["DaemonSet"], "kube-system")
    delete = functools.partial(sb.call, sb.store.delete, R["DaemonSet"], "kube-system")
    create(daemonset("kube-flannel-ds"))
    try:
        check = network_check(run)
        assert check["status"] == "warn"
        assert (
            "found flannel (kube-system/kube-flannel-ds), which does not enforce NetworkPolicy"
            in check["detail"]
        )
        create(daemonset("cilium"))
        try:
            check = network_check(run)
            assert check["status"] == "ok"
            assert check["detail"].startswith(
                "found Cilium (kube-system/cilium), a network plugin that enforces"
            )
            assert "cannot be checked from the API" in check["detail"]
        finally:
            delete("cilium")
    finally:
        delete("kube-flannel-ds")

    monkeypatch.setenv("VLLM_CHART", str(mini_chart_at("0.1.9", tmp_path)))  # read from its Chart.yaml
    monkeypatch.delenv("VLLM_CHART_VERSION")
    check = network_check(run)
    assert check["status"] == "fail"
    assert check["detail"].startswith("VLLM_NETWORK_POLICY needs chart 0.1.10 or newer")
