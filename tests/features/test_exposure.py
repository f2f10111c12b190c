"""Exposure (issue 8, item 7): the router's Service type and an Ingress, as settings;
checked, rendered into routerSpec, made by the chart, and shown by `vllmctl endpoints`."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Run
from tests.sandbox.fixtures import MINI_CHART, ClusterEnv, mini_chart_at
from tests.sandbox.kube.controllers import R
from vllmctl.catalog.store import parse
from vllmctl.core.errors import CatalogError, UsageError
from vllmctl.render.values import default_render_input, packaged_templates, render
from vllmctl.settings import Settings

# Needs no GPU, so it is Ready on the sandbox at once.
# `gated: false`: a made-up repo the Hub does not show would need the token.
SMALL = (
    "- name: small\n  modelURL: org/small\n  gated: false\n"
    "  requestGPU: 0\n  requestCPU: 1\n  requestMemory: 1Gi\n"
)
HOST = "vllm.example.com"
NEW_CHART = {"VLLM_CHART_VERSION": "0.1.12"}
CHART_ENV = {"VLLM_CHART": str(MINI_CHART), "VLLM_MODEL_TAG": "v0.10.1"}  # 0.1.8


def values(**env: str) -> dict[str, Any]:
    return rendered(**env).values


def rendered(templates: Path | None = None, **env: str) -> Any:
    # 0.1.8 unless a test asks for another (vllmctl's default is the newest tested).
    settings = Settings.resolve(
        {}, environ={"VLLM_MODEL_TAG": "v0.11.0", "VLLM_CHART_VERSION": "0.1.8", **env}
    )
    catalog = parse(Path("models.yaml"), SMALL.encode())
    return render(catalog.models, default_render_input(settings, templates_dir=templates))


def refusal(**env: str) -> str:
    with pytest.raises(UsageError) as caught:
        rendered(**env)
    return "\n".join([caught.value.message, *caught.value.details])


# --- settings: good values ------------------------------------------------------------------


def test_by_default_the_router_stays_inside_the_cluster() -> None:
    router = values()["routerSpec"]
    assert router["serviceType"] == "ClusterIP"
    assert not {"nodePort", "ingress"} & set(router)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ClusterIP", "ClusterIP"),
        ("nodeport", "NodePort"),
        ("LoadBalancer", "LoadBalancer"),
        ("", "ClusterIP"),
    ],
)
def test_service_types_in_any_case(given: str, expected: str) -> None:
    assert values(VLLM_ROUTER_SERVICE_TYPE=given)["routerSpec"]["serviceType"] == expected


def test_an_ingress_for_a_host_with_class_and_tls() -> None:
    router = values(VLLM_INGRESS_HOST=HOST, VLLM_INGRESS_CLASS="nginx", VLLM_INGRESS_TLS_SECRET="vllm-tls")[
        "routerSpec"
    ]
    assert router["ingress"] == {
        "enabled": True,
        "className": "nginx",
        "hosts": [{"host": HOST, "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "vllm-tls", "hosts": [HOST]}],
    }


@pytest.mark.parametrize("host", ["llm", "a-b.c-d.example", "x" * 63 + ".example.com"])
def test_plain_hosts_take_the_cluster_default_class_and_no_tls(host: str) -> None:
    assert values(VLLM_INGRESS_HOST=host)["routerSpec"]["ingress"] == {
        "enabled": True,
        "hosts": [{"host": host, "paths": [{"path": "/", "pathType": "Prefix"}]}],
    }


def test_a_fixed_node_port_from_chart_0_1_11() -> None:
    got = rendered(
        VLLM_ROUTER_SERVICE_TYPE="NodePort", VLLM_ROUTER_NODE_PORT="30080", VLLM_CHART_VERSION="0.1.11"
    )
    assert got.values["routerSpec"]["nodePort"] == 30080
    assert got.warnings == []


def test_a_node_port_outside_the_default_range_is_warned_about() -> None:
    got = rendered(VLLM_ROUTER_SERVICE_TYPE="NodePort", VLLM_ROUTER_NODE_PORT="8080", **NEW_CHART)
    assert got.values["routerSpec"]["nodePort"] == 8080
    assert any("outside Kubernetes' default node port range" in w for w in got.warnings)


# --- settings: bad values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"VLLM_ROUTER_SERVICE_TYPE": "ExternalName"},
            "not a Service type vllmctl can expose the router with",
        ),
        (
            {"VLLM_INGRESS_HOST": "https://vllm.example.com/"},
            "holds a scheme; give the host name only (VLLM_INGRESS_HOST=vllm.example.com)",
        ),
        ({"VLLM_INGRESS_HOST": "vllm.example.com/v1"}, "holds a path"),
        ({"VLLM_INGRESS_HOST": "vllm.example.com:8443"}, "holds a port"),
        ({"VLLM_INGRESS_HOST": "10.0.0.5"}, "is an IP address"),
        ({"VLLM_INGRESS_HOST": "*.example.com"}, "is a wildcard"),
        ({"VLLM_INGRESS_HOST": "VLLM.example.com"}, "upper-case letters; host names are lower case"),
        ({"VLLM_INGRESS_HOST": "vllm_api.example.com"}, "is not a DNS name"),
        ({"VLLM_INGRESS_HOST": "-vllm.example.com"}, "DNS-1123"),
        ({"VLLM_INGRESS_HOST": "x" * 64 + ".example.com"}, "a part longer than 63 characters"),
        ({"VLLM_INGRESS_HOST": "a." * 127 + "com"}, "has at most 253"),
        (
            {"VLLM_INGRESS_TLS_SECRET": "vllm-tls"},
            "VLLM_INGRESS_TLS_SECRET is set but VLLM_INGRESS_HOST is not",
        ),
        ({"VLLM_INGRESS_CLASS": "nginx"}, "VLLM_INGRESS_CLASS is set but VLLM_INGRESS_HOST is not"),
        ({"VLLM_INGRESS_HOST": HOST, "VLLM_INGRESS_TLS_SECRET": "Vllm_TLS"}, "is not a Secret name"),
        ({"VLLM_INGRESS_HOST": HOST, "VLLM_INGRESS_CLASS": "nginx public"}, "is not an IngressClass name"),
        ({"VLLM_ROUTER_NODE_PORT": "30080", **NEW_CHART}, "sets the node port only on a NodePort Service"),
        ({"VLLM_ROUTER_SERVICE_TYPE": "NodePort", "VLLM_ROUTER_NODE_PORT": "http"}, "is not a port number"),
        ({"VLLM_ROUTER_SERVICE_TYPE": "NodePort", "VLLM_ROUTER_NODE_PORT": "70000"}, "is not a port number"),
        (
            {"VLLM_ROUTER_SERVICE_TYPE": "NodePort", "VLLM_ROUTER_NODE_PORT": "30080"},
            "VLLM_ROUTER_NODE_PORT needs chart 0.1.11 or newer (older charts have no routerSpec.nodePort",
        ),
        ({"VLLM_INGRESS_HOST": HOST, "VLLM_ROUTER_ENABLED": "false"}, "VLLM_ROUTER_ENABLED is false"),
        ({"VLLM_ROUTER_SERVICE_TYPE": "LoadBalancer", "VLLM_ROUTER_ENABLED": "no"}, "exposes the router"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str], said: str) -> None:
    assert said in refusal(**env)


def test_every_problem_is_reported_at_once() -> None:
    message = refusal(
        VLLM_ROUTER_SERVICE_TYPE="Ingress", VLLM_INGRESS_TLS_SECRET="tls", VLLM_ROUTER_NODE_PORT="1"
    )
    head, *lines = message.splitlines()
    assert head == "4 problems with the router's exposure settings:"
    assert [line.split(" ", 1)[0] for line in lines] == [
        "VLLM_ROUTER_SERVICE_TYPE='Ingress'",
        "VLLM_ROUTER_NODE_PORT",  # not a NodePort Service
        "VLLM_ROUTER_NODE_PORT",  # chart 0.1.8
        "VLLM_INGRESS_TLS_SECRET",
    ]


def test_a_copied_template_that_predates_the_settings_is_caught(tmp_path: Path) -> None:
    # A copy made before these settings existed hard-codes ClusterIP and knows no ingress.
    old = (packaged_templates() / "values.yaml.j2").read_text()
    old = old.replace("serviceType: {{ router.service_type | yaml }}", 'serviceType: "ClusterIP"')
    (tmp_path / "values.yaml.j2").write_text(old)
    with pytest.raises(CatalogError, match=r'routerSpec.serviceType = "ClusterIP", not "LoadBalancer"'):
        rendered(tmp_path, VLLM_ROUTER_SERVICE_TYPE="LoadBalancer")


# --- what the chart makes (helm template on the mini chart) ------------------------------------


def manifests(run: Run, models_file: Path, **env: str) -> dict[tuple[str, str], dict[str, Any]]:
    if shutil.which("helm") is None:
        pytest.skip("scripts/test puts the pinned helm on PATH")
    models_file.write_text(SMALL)
    result = run("template", env={**CHART_ENV, **env})
    assert result.exit_code == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_helm_template_makes_the_ingress_and_a_node_port_service(
    run: Run, models_file: Path, tmp_path: Path
) -> None:
    chart = mini_chart_at("0.1.12", tmp_path)
    objects = manifests(
        run,
        models_file,
        VLLM_CHART=str(chart),
        VLLM_CHART_VERSION="0.1.12",
        VLLM_ROUTER_SERVICE_TYPE="NodePort",
        VLLM_ROUTER_NODE_PORT="30080",
        VLLM_INGRESS_HOST=HOST,
        VLLM_INGRESS_CLASS="nginx",
        VLLM_INGRESS_TLS_SECRET="vllm-tls",
    )
    service = objects[("Service", "vllm-router-service")]["spec"]
    assert service["type"] == "NodePort"
    assert service["ports"][0] == {
        "name": "router-sport",
        "port": 80,
        "targetPort": 8000,
        "protocol": "TCP",
        "nodePort": 30080,
    }
    assert objects[("Ingress", "vllm-ingress-router")]["spec"] == {
        "ingressClassName": "nginx",
        "tls": [{"secretName": "vllm-tls", "hosts": [HOST]}],
        "rules": [
            {
                "host": HOST,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "vllm-router-service", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ],
    }


def test_chart_0_1_8_has_the_ingress_but_no_fixed_node_port(run: Run, models_file: Path) -> None:
    objects = manifests(run, models_file, VLLM_INGRESS_HOST=HOST, VLLM_ROUTER_SERVICE_TYPE="LoadBalancer")
    assert objects[("Service", "vllm-router-service")]["spec"]["type"] == "LoadBalancer"
    assert objects[("Ingress", "vllm-ingress-router")]["spec"]["rules"][0]["host"] == HOST
    refused = run(
        "template",
        env={**CHART_ENV, "VLLM_ROUTER_SERVICE_TYPE": "NodePort", "VLLM_ROUTER_NODE_PORT": "30080"},
    )
    assert refused.exit_code == 2
    assert "VLLM_ROUTER_NODE_PORT needs chart 0.1.11 or newer" in refused.stderr


# --- on the sandbox: the objects, and what `endpoints` says -----------------------------------


def endpoints(run: Run) -> tuple[str, dict[str, Any]]:
    text = run("endpoints")
    assert text.exit_code == 0, text.stderr
    return text.stdout, json.loads(run("endpoints", "-o", "json").stdout)


def test_install_exposes_the_router_and_endpoints_shows_the_urls(
    run: Run, models_file: Path, cluster: ClusterEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb, ns = cluster.sandbox, cluster.namespace
    monkeypatch.setenv("VLLM_CHART", str(mini_chart_at("0.1.12", tmp_path)))
    monkeypatch.setenv("VLLM_CHART_VERSION", "0.1.12")
    monkeypatch.setenv("VLLM_ROUTER_SERVICE_TYPE", "NodePort")
    monkeypatch.setenv("VLLM_INGRESS_HOST", HOST)
    monkeypatch.setenv("VLLM_INGRESS_TLS_SECRET", "vllm-tls")
    models_file.write_text(SMALL)
    installed = run("install", "--yes", "--no-api-key")
    assert installed.exit_code == 0, installed.stderr

    ingress = sb.get("Ingress", ns, "vllm-ingress-router")
    assert ingress is not None
    assert ingress["spec"]["tls"] == [{"secretName": "vllm-tls", "hosts": [HOST]}]
    service = sb.get("Service", ns, "vllm-router-service")
    assert service is not None and service["spec"]["type"] == "NodePort"
    node_port = service["spec"]["ports"][0]["nodePort"]  # none asked for: the API server chose it
    assert 30000 <= node_port <= 32767

    text, data = endpoints(run)
    assert f"Base URL (outside, Ingress vllm-ingress-router): https://{HOST}/v1" in text
    assert f"port {node_port} on every node: http://<node address>:{node_port}/v1" in text
    ingress_access, node_access = data["external"]  # the Ingress first: the name clients use
    assert ingress_access["url"] == f"https://{HOST}/v1"
    assert ingress_access["state"] == "pending"  # no ingress controller gave it an address
    assert node_access == {
        "kind": "NodePort",
        "name": "vllm-router-service",
        "url": None,
        "state": "ready",
        "address": None,
        "node_port": node_port,
        "detail": f"port {node_port} on every node: http://<node address>:{node_port}/v1",
    }

    # Then a LoadBalancer and no Ingress: helm removes it; the address is pending until the
    # cloud's controller writes it into the Service's status.
    monkeypatch.setenv("VLLM_ROUTER_SERVICE_TYPE", "LoadBalancer")
    monkeypatch.delenv("VLLM_INGRESS_HOST")
    monkeypatch.delenv("VLLM_INGRESS_TLS_SECRET")
    upgraded = run("upgrade", "--yes", "--no-api-key")
    assert upgraded.exit_code == 0, upgraded.stderr
    assert sb.get("Ingress", ns, "vllm-ingress-router") is None
    text, data = endpoints(run)
    assert "From outside, LoadBalancer vllm-router-service: pending, no external address yet" in text
    assert [a["state"] for a in data["external"]] == ["pending"]

    service = sb.get("Service", ns, "vllm-router-service")
    assert service is not None
    service["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}
    sb.call(
        functools.partial(
            sb.store.update, R["Service"], ns, "vllm-router-service", service, subresource="status"
        )
    )
    text, data = endpoints(run)
    assert "Base URL (outside, LoadBalancer vllm-router-service): http://203.0.113.7/v1" in text
    assert data["external"][0]["address"] == "203.0.113.7"
