"""doctor's `image tag` row names the image each model really runs: a kvCache model's is
the LMCache image (VLLM_LMCACHE_IMAGE:VLLM_LMCACHE_TAG), as render writes it, not
VLLM_MODEL_IMAGE:VLLM_MODEL_TAG."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from vllmctl.catalog.schema import Model
from vllmctl.core.findings import Report
from vllmctl.doctor.release import check_image


def settings(**given: str) -> Any:
    values = {
        "model_image": "vllm/vllm-openai",
        "model_tag": "v0.10.1",
        "lmcache_image": "lmcache/vllm-openai",
        "lmcache_tag": "v0.3.9post2",
    }
    return SimpleNamespace(**{**values, **given})


def model(index: int, **data: Any) -> Model:
    return Model(index, {"modelURL": "Qwen/Qwen2.5-0.5B-Instruct", **data}, None)  # type: ignore[arg-type]


def row(report: Report) -> dict[str, Any]:
    found = next(c for c in report.checks if c.name == "image tag")
    return {"status": found.status, "detail": found.detail, "fix": found.fix}


def test_a_kv_cache_model_is_shown_with_the_lmcache_image() -> None:
    report = Report()
    plain = model(0, name="plain")
    cached = model(1, name="cached", kvCache={"cpuOffload": "20Gi"})
    check_image(report, settings(), [plain, cached])
    found = row(report)
    assert found["status"] == "ok"
    assert "vllm/vllm-openai:v0.10.1 (plain)" in found["detail"]
    assert "lmcache/vllm-openai:v0.3.9post2 (cached)" in found["detail"]


def test_own_image_and_tag_win_over_the_lmcache_image() -> None:
    report = Report()
    own = model(0, name="own", image="registry.example.com/lmcache", kvCache={"cpuOffload": "20Gi"})
    tagged = model(1, name="tagged", tag="v0.3.10", kvCache={"cpuOffload": "20Gi"})
    check_image(report, settings(), [own, tagged])
    detail = row(report)["detail"]
    assert "registry.example.com/lmcache:v0.10.1 (own)" in detail
    assert "lmcache/vllm-openai:v0.3.10 (tagged)" in detail


def test_a_floating_lmcache_tag_warns_and_names_its_own_setting() -> None:
    report = Report()
    cached = model(0, name="cached", kvCache={"cpuOffload": "20Gi"})
    check_image(report, settings(lmcache_tag="latest"), [cached])
    found = row(report)
    assert found["status"] == "warn"
    assert "lmcache/vllm-openai:latest (cached)" in found["detail"]
    assert "VLLM_LMCACHE_TAG=" in found["fix"] and "VLLM_MODEL_TAG" not in found["fix"]


def test_a_floating_model_tag_does_not_warn_for_kv_cache_models_alone() -> None:
    report = Report()
    cached = model(0, name="cached", kvCache={"cpuOffload": "20Gi"})
    check_image(report, settings(model_tag="latest"), [cached])
    assert row(report)["status"] == "ok"
