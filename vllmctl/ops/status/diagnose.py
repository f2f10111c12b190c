"""Why something is not Ready, in plain words: one pod (from its conditions, its containers'
states and the scheduler's and kubelet's events, with its log tail and known secret values
redacted), and a Deployment's rollout (a feature's objects, such as KEDA's, are explained by
the feature). No calls: the objects come
from vllmctl.ops.status.cluster. `pod_reason` is for commands that wait for pods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vllmctl.core.quantity import as_int
from vllmctl.ops.status.objects import parse_timestamp, short_age
from vllmctl.ops.status.report import Obj, PodStatus

CRASHING = ("CrashLoopBackOff", "RunContainerError", "Error", "OOMKilled")
PULLING = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")


# --- a Deployment -------------------------------------------------------------------------


def rolled_out(deployment: Obj) -> bool:
    """Every desired replica up to date, Ready and available, and no old ones left."""
    spec, st = deployment.get("spec") or {}, deployment.get("status") or {}
    if (as_int(st.get("observedGeneration")) or 0) < (as_int(deployment["metadata"].get("generation")) or 0):
        return False
    want = as_int(spec.get("replicas"), 1) or 0
    counts = [
        as_int(st.get(k)) or 0 for k in ("updatedReplicas", "readyReplicas", "availableReplicas", "replicas")
    ]
    return counts == [want] * 4


def deployment_problems(deployment: Obj, pods: list[Obj]) -> list[str]:
    problems = []
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            problems.append(f"cannot create pods: {cond.get('message') or cond.get('reason')}")
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            problems.append(f"the rollout is stuck: {cond.get('message')}")
    want = as_int((deployment.get("spec") or {}).get("replicas"), 1) or 0
    if want and not pods and not problems:
        problems.append(f"no pods yet ({want} wanted)")
    return problems


def summarise(pods: list[PodStatus], extra: list[str]) -> list[str]:
    """One line per distinct reason, with how many pods share it."""
    counts: dict[str, int] = {}
    for pod in pods:
        if pod.reason:
            counts[pod.reason] = counts.get(pod.reason, 0) + 1
    lines = [reason if n == 1 else f"{n} pods: {reason}" for reason, n in counts.items()]
    return [*extra, *lines]


# --- one pod, in plain words --------------------------------------------------------------


def pod_status(pod: Obj, events: list[Obj], log: list[str] | None, clean: Callable[[str], str]) -> PodStatus:
    meta, st = pod["metadata"], pod.get("status") or {}
    statuses = [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]
    ready = _condition(st, "Ready") == "True"
    restarts = sum(as_int(cs.get("restartCount")) or 0 for cs in st.get("containerStatuses") or [])
    created = meta.get("creationTimestamp")
    result = PodStatus(
        name=meta["name"],
        phase=st.get("phase") or "Pending",
        status=_status_column(pod),
        ready=ready,
        restarts=restarts,
        age=short_age(parse_timestamp(created)),
        created=created,
        node=(pod.get("spec") or {}).get("nodeName"),
    )
    for cs in statuses:
        terminated = (cs.get("lastState") or {}).get("terminated") or (cs.get("state") or {}).get(
            "terminated"
        )
        if terminated and terminated.get("exitCode") is not None:
            result.exit_code = as_int(terminated.get("exitCode"))
            break
    if not ready:
        result.reason = clean(_why_not_ready(pod, statuses, events))
        result.log_tail = [clean(line) for line in log or []]
    return result


def _why_not_ready(pod: Obj, statuses: list[Obj], events: list[Obj]) -> str:
    meta, st = pod["metadata"], pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "terminating (being replaced or scaled down)"
    if st.get("reason"):  # Evicted, NodeLost, ...
        return f"{st['reason']}: {st.get('message') or 'no message'}"
    if st.get("phase") == "Succeeded":
        return "its containers exited (Succeeded); a server should not"
    if _condition(st, "PodScheduled") == "False":
        message = _last_event(events, "FailedScheduling") or _condition_message(st, "PodScheduled")
        return f"Pending: cannot be scheduled: {_scheduler_words(message)}"
    for cs in statuses:
        if cs.get("ready"):
            continue
        why = _why_container(cs, events)
        if why:
            return why
    if not statuses:
        warning = _last_warning(events)
        return f"Pending: {warning}" if warning else "Pending: waiting for the kubelet to start it"
    return "not Ready yet"


def _why_container(cs: Obj, events: list[Obj]) -> str | None:
    name = cs.get("name")
    state = cs.get("state") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    restarts = as_int(cs.get("restartCount")) or 0
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason") or ""
    if reason == "CrashLoopBackOff" or (reason in CRASHING and last):
        return _crash_words(name, last, restarts, "CrashLoopBackOff: ")
    if reason in PULLING:
        failed = _last_event(events, "Failed", containing="pull") or waiting.get("message") or ""
        image = cs.get("image") or "its image"
        return f"{reason}: cannot pull image {image}" + (f": {failed}" if failed else "")
    if reason in ("ContainerCreating", "PodInitializing"):
        warning = _last_warning(events)
        return f"{reason}: {warning}" if warning else f"{reason}: starting"
    if reason:
        detail = waiting.get("message") or _last_warning(events)
        return f"{reason}: container {name}" + (f": {detail}" if detail else "")
    terminated = state.get("terminated")
    if terminated:
        return _crash_words(name, terminated, restarts, "")
    if "running" in state:
        unhealthy = _last_event(events, "Unhealthy")
        if unhealthy:
            return f"running, not Ready: {unhealthy}"
        if last and last.get("exitCode"):
            return _crash_words(name, last, restarts, "restarting after a crash: ")
        return "running, not Ready yet (loading the model?)"
    return None


def _crash_words(name: Any, terminated: Obj, restarts: int, prefix: str) -> str:
    code, why = terminated.get("exitCode"), terminated.get("reason") or "Error"
    times = f"; restarted {restarts} time{'s' if restarts != 1 else ''}" if restarts else ""
    if why == "OOMKilled":
        return (
            f"{prefix}OOMKilled: container {name} ran out of memory and was killed "
            f"(exit code {code}){times}; raise its memory limit (limitMemory)"
        )
    message = terminated.get("message")
    return f"{prefix}container {name} exited with code {code} ({why}){times}" + (
        f": {message}" if message else ""
    )


def _scheduler_words(message: str) -> str:
    """kube-scheduler's message without its preemption postscript."""
    message = message.split(" preemption:")[0].strip()
    return message.rstrip(".") or "no reason given"


def _status_column(pod: Obj) -> str:
    """What `kubectl get pods` shows as STATUS."""
    st = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    column = st.get("reason") or st.get("phase") or "Pending"
    for cs in st.get("initContainerStatuses") or []:
        state = cs.get("state") or {}
        if (state.get("terminated") or {}).get("exitCode"):
            return "Init:" + (state["terminated"].get("reason") or "Error")
        if (state.get("waiting") or {}).get("reason") not in (None, "PodInitializing"):
            return "Init:" + str(state["waiting"]["reason"])
    for cs in st.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            column = state["waiting"]["reason"]
        elif state.get("terminated"):
            t = state["terminated"]
            column = t.get("reason") or f"ExitCode:{t.get('exitCode')}"
    return str(column)


def _condition(status: Obj, kind: str) -> str | None:
    return next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _condition_message(status: Obj, kind: str) -> str:
    return next(
        (
            str(c.get("message") or c.get("reason") or "")
            for c in status.get("conditions") or []
            if c.get("type") == kind
        ),
        "",
    )


def _last_event(events: list[Obj], reason: str, containing: str = "") -> str | None:
    for event in reversed(events):
        message = str(event.get("message") or "")
        if event.get("reason") == reason and containing.lower() in message.lower():
            return message.strip()
    return None


def _last_warning(events: list[Obj]) -> str | None:
    for event in reversed(events):
        if event.get("type") == "Warning":
            return f"{event.get('reason')}: {str(event.get('message') or '').strip()}"
    return None


def event_time(event: Obj) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("series") or {}).get("lastObservedTime")
        or event["metadata"].get("creationTimestamp")
        or ""
    )


def pod_reason(pod: Obj, events: list[Obj]) -> str | None:
    """Why one pod is not Ready, in the words of `status` (None when it is Ready): for
    commands that wait for pods (rotate-api-key's restarts)."""
    st = pod.get("status") or {}
    if _condition(st, "Ready") == "True":
        return None
    statuses = [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]
    return _why_not_ready(pod, statuses, sorted(events, key=event_time))


def redactor(secrets: list[str]) -> Callable[[str], str]:
    values = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def clean(text: str) -> str:
        for value in values:
            text = text.replace(value, "[redacted]")
        return text

    return clean
