"""vllmctl doctor: every check that can catch a deployment failure before helm runs.

The order follows dependencies: tools, models.yaml, then the cluster (nothing else in it
is checked when it does not answer), the secrets, each chart feature's checks (in the
registry's order), and per model GPU fit, Hub access and the memory estimate. Nothing here
prints; the command shows the Report.
"""

from __future__ import annotations

from typing import Any

from vllmctl.core.findings import Report


def diagnose(settings: Any, *, hub: bool = True) -> Report:
    from vllmctl.doctor import environment, models, release

    report = Report()
    environment.check_tools(report, settings)
    catalog = release.check_models(report, settings)
    release.check_image(report, settings, catalog)
    kube = environment.connect(report, settings)
    token: str | None = settings.hf_token or None
    gpus = None
    if kube is None:
        release.check_chart(report, settings, None, index=hub)
        release.check_router_image(report, settings)
        _feature_checks(report, None, settings, catalog)  # those that need no cluster
    else:
        with kube:
            environment.check_namespace(report, kube, settings)
            # First the deployed release: its chart version is the target unless told
            # otherwise, and the checks below judge the settings for that version.
            prepared = release.check_release(report, settings) if catalog else None
            deployed = prepared.deployed if prepared else None
            release.check_chart(report, settings, deployed.chart_version if deployed else None, index=hub)
            release.check_router_image(report, settings)
            eso = environment.check_secret_store(report, kube, settings)
            environment.check_permissions(report, kube, settings, eso=eso)
            if catalog:
                token = release.check_secrets(report, kube, settings, catalog)
            _feature_checks(report, kube, settings, catalog)
            if prepared:
                gpus = models.check_gpu_fit(report, kube, settings, prepared)
    if catalog:
        models.check_models(report, settings, catalog, token=token, gpus=gpus, hub=hub)
    return report


def _feature_checks(report: Report, kube: Any, settings: Any, catalog: Any) -> None:
    """Each chart feature's checks (KEDA, claims, the Ingress's class...), with the cluster
    or None when it did not answer; those that judge a chart version skip when it is in
    doubt (the chart row says why, once)."""
    from vllmctl.doctor import release
    from vllmctl.features import registry
    from vllmctl.features.contexts import DoctorContext

    context = DoctorContext(kube, settings, catalog, release.chart_decided(settings))
    for feature in registry.FEATURES:
        feature.doctor(report, context)
