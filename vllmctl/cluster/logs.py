"""The logs of a set of pods, for `vllmctl logs` and `vllmctl router-logs`.

Pods are found by a label selector scoped to the release (engines: `model` and
`helm-release-name`; the router: its Deployment's selector, narrowed to the pods that
Deployment owns, since in chart 0.1.8/0.1.9 that selector is only `routerSpec.labels`;
a multi-node model: KubeRay's labels on its RayCluster's pods, the head by default,
since the head runs `vllm serve` and the workers only Ray).

Without --follow each container's log is read in turn, pod by pod. With --follow a watch
on the selector finds the pods, and every container instance gets a reader thread: pods
that start later (a rollout, a deleted pod's replacement, a scale-up) and restarted
containers are picked up, and a pod that goes away just ends its stream. The readers put
lines in one queue and only the caller's thread writes, so lines are never torn and no
other thread touches stdout. Ctrl-C ends every stream and returns. No click here.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from typing import Any, NamedTuple, TextIO

from vllmctl.chart.facts import MODEL_LABEL, RELEASE_LABEL, router_deployment_name
from vllmctl.core.errors import ExternalError, UsageError

Obj = dict[str, Any]
Note = Callable[[str], None]

DEFAULT_TAIL = 100
# ANSI colours for pod prefixes, in the order pods are first seen (no red: it reads as an error).
COLOURS = ("36", "32", "35", "33", "34", "96", "92", "95", "93", "94")
JOIN_SECONDS = 5.0  # how long shutting down waits for the reader threads


class LogOptions(NamedTuple):
    """What to read from each container: the command's flags."""

    follow: bool = True
    tail: int | None = DEFAULT_TAIL  # lines of the existing log first; None: all of it
    since_seconds: int | None = None
    previous: bool = False  # the instance before the last restart; never followed
    container: str | None = None  # None: every container of the pod spec


class Outcome(NamedTuple):
    """What happened: pods found, logs read, logs that could not be, and Ctrl-C."""

    pods: int
    read: int
    failed: int
    interrupted: bool = False


# --- arguments ------------------------------------------------------------------------------


def parse_since(text: str) -> int:
    """kubectl's --since: a Go duration (`90s`, `10m`, `1h30m`, `1.5h`) as whole seconds, rounded up."""
    from vllmctl.core.durations import go_seconds

    total = go_seconds(text)
    if total is None:
        raise UsageError(
            f"--since {text!r} is not a duration: write a number and a unit (s, m, h), e.g. 30s, 10m, 1h30m."
        )
    if total <= 0:
        raise UsageError(f"--since {text!r} must be longer than 0s.")
    return max(1, math.ceil(total))


def tail_lines(tail: int) -> int | None:
    """--tail N: N lines, or None (the whole log) for -1, as kubectl reads it."""
    if tail < -1:
        raise UsageError(f"--tail {tail}: give a number of lines, or -1 for the whole log.")
    return None if tail == -1 else tail


# --- which pods -----------------------------------------------------------------------------


def deployed_models(kube: Any, namespace: str, release: str, rays: Iterable[str] = ()) -> list[str]:
    """The models that have an engine Deployment of this release in the namespace, with
    `rays` (the multi-node ones, `ray_models`), sorted.

    Read from the Deployments' selectors, which carry `model` and `helm-release-name` in
    every chart version (their metadata labels vary)."""
    models = set(rays)
    for deployment in kube.list("apps/v1", "deployments", namespace):
        labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if labels.get(RELEASE_LABEL) == release and labels.get(MODEL_LABEL):
            models.add(str(labels[MODEL_LABEL]))
    return sorted(models)


def ray_models(kube: Any, namespace: str, release: str, warn: Note) -> dict[str, str]:
    """The release's multi-node models: model -> its RayCluster's name. None where the
    cluster does not serve RayClusters; a list refused (RBAC) is said and counts as none,
    so the logs of the other models still work."""
    from vllmctl.core.errors import VllmctlError
    from vllmctl.features.multinode_cluster import release_rayclusters

    try:
        listed = release_rayclusters(kube, namespace, release)
    except VllmctlError as e:
        warn(f"multi-node models are not looked for: {e.message}")
        return {}
    found = {}
    for rc in listed:
        model = (rc["metadata"].get("labels") or {}).get(MODEL_LABEL)
        if model:
            found[str(model)] = str(rc["metadata"]["name"])
    return found


def ray_pods(
    kube: Any, namespace: str, model: str, raycluster: str, *, worker: int | None, all_nodes: bool
) -> tuple[str, Callable[[Obj], bool] | None, str]:
    """Which of a multi-node model's pods to show: the selector, a test (for one worker)
    and the words for them. The head by default; `worker` is the Nth worker pod (from 1,
    by name, as they are now); `all_nodes` every pod, head and workers."""
    from vllmctl.features.multinode_cluster import CLUSTER_LABEL, NODE_TYPE_LABEL

    cluster = f"{CLUSTER_LABEL}={raycluster}"
    if all_nodes:
        return cluster, None, f"every Ray node of model {model} (RayCluster {raycluster})"
    if worker is None:
        return (
            f"{cluster},{NODE_TYPE_LABEL}=head",
            None,
            f"the Ray head of model {model} (RayCluster {raycluster})",
        )
    selector = f"{cluster},{NODE_TYPE_LABEL}=worker"
    names = sorted(
        str(p["metadata"]["name"])
        for p in kube.list("v1", "pods", namespace, label_selector=selector)
        if not p["metadata"].get("deletionTimestamp")
    )
    if not 1 <= worker <= len(names):
        have = f"{len(names)} worker pod{'s' * (len(names) != 1)} now" + (
            f" ({', '.join(names)})" if names else ""
        )
        choose = (
            f"--worker takes 1 to {len(names)}"
            if names
            else "wait for KubeRay to make them (`vllmctl status`)"
        )
        raise UsageError(f"--worker {worker}: model {model} has {have}; {choose}.")
    name = names[worker - 1]
    return selector, lambda pod: _name(pod) == name, f"worker {worker} ({name}) of model {model}"


def router_pods(kube: Any, namespace: str, release: str) -> tuple[str, Callable[[Obj], bool]]:
    """The router Deployment's label selector, and a test that a pod is one of its own."""
    name = router_deployment_name(release)
    deployment = kube.get("apps/v1", "deployments", namespace, name)
    if deployment is None:
        raise UsageError(
            f"release {release} has no router Deployment {name} in namespace {namespace}: "
            "check --namespace and VLLM_RELEASE, or whether the router is enabled."
        )
    selector = selector_text((deployment.get("spec") or {}).get("selector") or {})
    if not selector:
        raise ExternalError(f"the router Deployment {name} in namespace {namespace} has an empty selector.")
    return selector, lambda pod: owned_by_deployment(pod, name)


def selector_text(selector: Obj) -> str:
    """A LabelSelector object (matchLabels, matchExpressions) as a `labelSelector` query."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(expression.get("values") or [])
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": f"{key}"}.get(
                str(operator), f"!{key}"
            )
        )
    return ",".join(parts)


def owned_by_deployment(pod: Obj, deployment: str) -> bool:
    """Whether the pod's ReplicaSet is one of the Deployment's: `<deployment>-<pod-template-hash>`."""
    meta = pod.get("metadata") or {}
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    return bool(template_hash) and any(
        owner.get("kind") == "ReplicaSet" and owner.get("name") == f"{deployment}-{template_hash}"
        for owner in meta.get("ownerReferences") or []
    )


# --- showing them ---------------------------------------------------------------------------


class Prefixer:
    """`[pod] ` or `[pod/container] ` before each line; coloured per pod on a terminal."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self._colours: dict[str, str] = {}

    def __call__(self, pod: str, source: str) -> str:
        if not self.colour:
            return f"[{source}] "
        code = self._colours.setdefault(pod, COLOURS[len(self._colours) % len(COLOURS)])
        return f"\033[{code}m[{source}]\033[0m "


def show_logs(
    kube: Any,
    namespace: str,
    selector: str,
    options: LogOptions,
    *,
    out: TextIO,
    colour: bool,
    note: Note,
    warn: Note,
    accept: Callable[[Obj], bool] | None = None,
    waiting: str = "",
) -> Outcome:
    """Write the logs of the pods matching `selector` (and `accept`) to `out`, each line
    prefixed with its pod. Follows unless told not to (or --previous); returns at Ctrl-C.
    `waiting` is said when following starts with no pods."""
    keep = accept or (lambda _pod: True)
    prefix = Prefixer(colour)
    try:
        if options.follow and not options.previous:
            return _Follower(kube, namespace, selector, options, keep, out, prefix, note, warn, waiting).run()
        return _dump(kube, namespace, selector, options, keep, out, prefix, warn)
    except KeyboardInterrupt:
        return Outcome(0, 0, 0, interrupted=True)


def _dump(
    kube: Any,
    namespace: str,
    selector: str,
    options: LogOptions,
    keep: Callable[[Obj], bool],
    out: TextIO,
    prefix: Prefixer,
    warn: Note,
) -> Outcome:
    """Each container's log, pod by pod in name order, read to its end."""
    pods = sorted((p for p in kube.list("v1", "pods", namespace, selector) if keep(p)), key=_name)
    _check_container(pods, options.container)
    read = failed = 0
    for pod in pods:
        for container, source in _sources(pod, options.container):
            problem = _unreadable(pod, container, options.previous)
            if problem:
                warn(f"{source}: {problem}")
                failed += 1
                continue
            lines = kube.pod_logs(
                namespace,
                _name(pod),
                container,
                follow=False,
                tail=options.tail,
                since_seconds=options.since_seconds,
                previous=options.previous,
            )
            start = prefix(_name(pod), source)
            try:
                with closing(lines):
                    for text in lines:
                        out.write(f"{start}{text}\n")
            except ExternalError as e:
                warn(f"{source}: {e.message}")
                failed += 1
                continue
            out.flush()
            read += 1
    return Outcome(len(pods), read, failed)


class _Follower:
    """The watch thread, one reader thread per container instance, and the writing loop."""

    def __init__(
        self,
        kube: Any,
        namespace: str,
        selector: str,
        options: LogOptions,
        keep: Callable[[Obj], bool],
        out: TextIO,
        prefix: Prefixer,
        note: Note,
        warn: Note,
        waiting: str,
    ) -> None:
        self.kube, self.namespace, self.selector, self.options = kube, namespace, selector, options
        self.keep, self.out, self.prefix, self.note, self.warn = keep, out, prefix, note, warn
        self.waiting = waiting
        # ("pods", {name: pod}) | ("line", pod, source, text) | ("ended", key, source, error)
        # | ("failed", ExternalError): everything the threads report, in order.
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.stop = threading.Event()
        self.lock = threading.Lock()  # guards `enders`, which threads fill and shutdown empties
        self.enders: dict[object, Callable[[], None]] = {}
        self.threads: list[threading.Thread] = []
        self.started: set[tuple[str, str, int]] = set()  # (pod uid, container, restart count)
        self.present: set[str] = set()  # pod names, to tell which are new and which are gone
        self.checked = False  # whether --container was checked against a pod
        self.pods = self.read = self.failed = 0

    def run(self) -> Outcome:
        self._spawn(self._watch)
        first = True
        try:
            while True:
                event = self.events.get()
                if event[0] == "line":
                    _, pod, source, text = event
                    self.out.write(f"{self.prefix(pod, source)}{text}\n")
                elif event[0] == "pods":
                    self._pods(event[1], first)
                    first = False
                elif event[0] == "ended":
                    _, _key, source, error = event
                    if error:
                        self.warn(f"{source}: {error}")
                        self.failed += 1
                    else:
                        self.read += 1
                else:  # the watch failed: nothing more would ever arrive
                    raise event[1]
                if self.events.empty():
                    self.out.flush()
        except KeyboardInterrupt:
            return Outcome(self.pods, self.read, self.failed, interrupted=True)
        finally:
            self._shutdown()

    # --- the caller's thread -----------------------------------------------------------------

    def _pods(self, pods: dict[str, Obj], first: bool) -> None:
        """A new state of the selected pods: start readers for new container instances."""
        mine = sorted((p for p in pods.values() if self.keep(p)), key=_name)
        if first and not mine and self.waiting:
            self.note(self.waiting)
        if mine and not self.checked:
            _check_container(mine, self.options.container)
            self.checked = True
        gone = self.present - {_name(p) for p in mine}
        for name in sorted(gone):
            self.note(f"pod {name} is gone")
        self.present -= gone
        for pod in mine:
            name, uid = _name(pod), str(pod["metadata"].get("uid", ""))
            if name not in self.present:
                self.present.add(name)
                self.pods += 1
                if not first:
                    self.note(f"following new pod {name}")
            for container, source in _sources(pod, self.options.container):
                restarts = _instance(pod, container)
                if restarts is None or (uid, container, restarts) in self.started:
                    continue
                if restarts and not first:
                    self.note(f"{source} restarted ({restarts}); following the new instance")
                self.started.add((uid, container, restarts))
                # What was already there when we started gets --tail/--since; anything
                # newer is shown from its first line.
                tail, since = (self.options.tail, self.options.since_seconds) if first else (None, None)
                self._spawn(self._read, (uid, container, restarts), name, container, source, tail, since)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(
            target=target, args=args, daemon=True, name=f"vllmctl-logs-{target.__name__}"
        )
        self.threads.append(thread)
        thread.start()

    def _shutdown(self) -> None:
        """End the watch and every stream, then wait (briefly) for their threads."""
        with self.lock:
            self.stop.set()
            enders = list(self.enders.values())
            self.enders.clear()
        for end in enders:
            end()
        for thread in self.threads:
            thread.join(JOIN_SECONDS / max(1, len(self.threads)))

    # --- other threads -----------------------------------------------------------------------

    def _opened(self, key: object, end: Callable[[], None]) -> None:
        """A stream is open; `end` closes it from any thread (at once when already stopping)."""
        with self.lock:
            if not self.stop.is_set():
                self.enders[key] = end
                return
        end()

    def _closed(self, key: object) -> None:
        with self.lock:
            self.enders.pop(key, None)

    def _watch(self) -> None:
        states = self.kube.watch_pods(
            self.namespace, self.selector, on_open=lambda end: self._opened("watch", end)
        )
        try:
            with closing(states):
                for pods in states:
                    if self.stop.is_set():
                        return
                    self.events.put(("pods", pods))
        except ExternalError as e:
            if not self.stop.is_set():
                self.events.put(("failed", e))
        finally:
            self._closed("watch")

    def _read(
        self,
        key: tuple[str, str, int],
        pod: str,
        container: str,
        source: str,
        tail: int | None,
        since: int | None,
    ) -> None:
        lines = self.kube.pod_logs(
            self.namespace,
            pod,
            container,
            follow=True,
            tail=tail,
            since_seconds=since,
            on_open=lambda end: self._opened(key, end),
        )
        error = None
        try:
            with closing(lines):
                for text in lines:
                    self.events.put(("line", pod, source, text))
        except ExternalError as e:
            error = e.message
        finally:
            self._closed(key)
            if not self.stop.is_set():
                self.events.put(("ended", key, source, error))


# --- pods and containers --------------------------------------------------------------------


def _name(pod: Obj) -> str:
    return str(pod["metadata"]["name"])


def _containers(pod: Obj, key: str = "containers") -> list[str]:
    return [str(c["name"]) for c in (pod.get("spec") or {}).get(key) or []]


def _sources(pod: Obj, chosen: str | None) -> Iterator[tuple[str, str]]:
    """(container, label) for each container to read; the label names the container only
    when the pod has several."""
    names = [chosen] if chosen else _containers(pod)
    for container in names:
        yield container, _name(pod) if chosen or len(names) == 1 else f"{_name(pod)}/{container}"


def _check_container(pods: Iterable[Obj], chosen: str | None) -> None:
    pods = list(pods)
    if not chosen or not pods:
        return
    known = sorted({c for pod in pods for c in _containers(pod) + _containers(pod, "initContainers")})
    if chosen not in known:
        raise UsageError(
            f"--container {chosen}: these pods have no such container; they have {', '.join(known)}."
        )


def _status(pod: Obj, container: str) -> Obj:
    status = pod.get("status") or {}
    for entry in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if entry.get("name") == container:
            return dict(entry)
    return {}


def _instance(pod: Obj, container: str) -> int | None:
    """The restart count of the container instance whose log the kubelet serves now, or
    None while there is none (the container has not started yet)."""
    status = _status(pod, container)
    state = status.get("state") or {}
    if "running" in state or "terminated" in state or (status.get("lastState") or {}).get("terminated"):
        return int(status.get("restartCount") or 0)
    return None


def _unreadable(pod: Obj, container: str, previous: bool) -> str | None:
    """Why the kubelet has no such log, told from the pod's status; None when it should."""
    status = _status(pod, container)
    if previous:
        if not status.get("restartCount") and not (status.get("lastState") or {}).get("terminated"):
            return f"container {container} has not restarted, so there is no previous log"
        return None
    if _instance(pod, container) is None:
        waiting = (status.get("state") or {}).get("waiting") or {}
        return f"no log yet: container {container} is waiting to start ({waiting.get('reason', 'Pending')})"
    return None
