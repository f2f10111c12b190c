"""The leak test (docs/secrets.md): every command of the suite runs with a canary
HuggingFace token and a canary API key, and neither may appear anywhere but the stdout of
`get-*`.

vllmctl runs as a real process (`python -m vllmctl -v ...`) in a fresh working directory,
HOME and TMPDIR, against the sandbox. The secrets reach it only the allowed ways: piped to
standard input, or in its own VLLM_HF_TOKEN / VLLM_API_KEY (which it must not hand on).
helm and kubectl are replaced (VLLM_HELM, VLLM_KUBECTL and PATH) by wrappers that record
their argv, their environment and every file under TMPDIR at the moment they start (the
private values file lives there while helm runs), then exec the real binary. Every
logger of the vllmctl process writes at DEBUG to a file of its own (a sitecustomize on
PYTHONPATH), so the log output is checked too, whatever `-v` prints. A command that serves
until Ctrl-C (port-forward) carries one request with the API key, then gets SIGINT.

Then the canaries, the keys vllmctl generated or rotated on its own (read back with
`get-api-key`), and the Vault and cluster tokens vllmctl uses are searched, raw and in
base64 at every alignment, in: each command's stdout (but get-*'s, which must be exactly
the value) and stderr, its log file, each child's argv, environment and TMPDIR files,
every file left under the working directory, HOME and TMPDIR, every object of the
namespace after every command (the release helm stores decoded; the hf-token and
vllm-api-key Secrets without their data), and the lines the test added to OpenBao's file
audit log (where the server HMACs values: vllmctl must add nothing in the clear).

New commands go into STEPS (or, with a reason, into SKIPPED): a test fails otherwise.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.fixtures import REPO, ClusterEnv
from tests.sandbox.kube.controllers import R
from vllmctl.cli import COMMANDS
from vllmctl.cluster.tools import SECRET_ENV as CHILD_SECRET_ENV

# Canaries: unique strings that cannot turn up by chance. The token passes vllmctl's
# HuggingFace token check (hf_ and 30+ letters or digits), the key is as long as a
# generated one.
TOKEN = "hf_" + "CanaryHfTok" + "7Qw3Er9Ty5Ui1Op8As2Df6Gh4Jk0L"
API_KEY = "CanaryApiKey" + "m4N7b1V8c5X2z9L3k6J0h4G7f1D8s5A2p9O3"
CANARIES = {"the canary HF token": TOKEN, "the canary API key": API_KEY}
SECRET_ENV = {"VLLM_HF_TOKEN": TOKEN, "VLLM_API_KEY": API_KEY}

# As an old models.yaml has it: no `gated:`. install asks the Hub (the stand-in says the repo
# is gated, anonymously: no token goes there) and stores VLLM_HF_TOKEN for it.
MODELS = """\
- name: llama3
  modelURL: meta-llama/Llama-3.1-8B-Instruct
  requestGPU: 1
"""
QWEN = ("--name", "qwen", "--model-url", "Qwen/Qwen2.5-1.5B-Instruct", "--gpus", "0")

VAULT = ("--secret-backend", "vault")
# export refuses a local chart (a reconciler cannot read it): the same chart from a repository,
# at the deployed release's version (no VLLM_CHART_VERSION: export keeps the release's).
GITOPS_ENV = {**SECRET_ENV, "VLLM_CHART": "vllm/vllm-stack"}
KUBE = ("--secret-backend", "kubernetes")


@dataclass(frozen=True)
class Step:
    """One vllmctl run. `-v` is added after the command name."""

    # the command and its arguments (a secret only where the step shows the refusal of the old
    # positional form, which must not repeat it)
    args: tuple[str, ...]
    stdin: str = ""  # piped to standard input ("" is an empty pipe)
    env: Mapping[str, str] = field(default_factory=lambda: SECRET_ENV)  # vllmctl's own extra environment
    exit: int | None = 0  # the exit code the flow needs; None: may fail (nothing may leak either way)
    prints: str | None = None  # get-*: stdout must be exactly this secret (a CANARIES name) and a newline
    learns: str | None = None  # get-api-key after a key vllmctl made: its stdout, checked like a canary
    # Runs until Ctrl-C (port-forward): its first stdout line is a base URL; one chat request
    # with the canary API key goes through it, then SIGINT.
    forwards: bool = False


# Every command, in an order that takes the secrets through their real paths: install
# storing the token from VLLM_HF_TOKEN for the model the Hub says is gated, sets from standard input,
# syncs, rotation, deletes; first with Vault + ESO, then with Kubernetes Secrets.
STEPS: tuple[Step, ...] = (
    # -- no cluster, or nothing stored yet (both secrets are in vllmctl's environment in every
    # step whose `env` does not say otherwise)
    Step(("config",)),
    Step(("config", "-o", "json")),
    Step(("validate",)),
    Step(("list-models", "-o", "json")),
    Step(("show-model", "llama3")),
    Step(("add-model", "--yes", *QWEN)),
    Step(("set-model", "qwen", "replicaCount=1")),
    Step(("remove-model", "--yes", "qwen")),
    Step(("render",)),
    Step(("render", "-o", "values.yaml")),
    Step(("template",)),
    Step(("plan",), exit=1),  # no release yet: everything would change
    Step(("upgrade", "--yes", *VAULT), env={}, exit=None),  # no token stored, no release: refused
    Step(("add-helm-repo",), exit=None),  # VLLM_CHART is a directory: no repo to add
    Step(("remove-helm-repo",), exit=None),
    Step(("create-namespace",)),
    # -- vault backend: install stores the token and the key from the environment
    Step(("install", "--yes", "--api-key", *VAULT)),
    Step(("get-hf-token",), prints="the canary HF token"),  # auto chooses vault here
    Step(("get-api-key", *VAULT), prints="the canary API key"),
    Step(("diff",)),  # plan's alias: nothing to change now
    # The release as GitOps files: references to the Secrets and ExternalSecrets, no value.
    Step(("export", "flux", "gitops-flux", *VAULT), env=GITOPS_ENV),
    Step(("export", "flux", "gitops-flux", "--check", *VAULT), env=GITOPS_ENV),
    Step(("export", "argocd", "gitops-argocd", *VAULT), env=GITOPS_ENV),
    Step(("export", "argocd", "gitops-argocd", "--offline", "--check", *VAULT), env=GITOPS_ENV),
    # The stored token goes to the Hub stand-in (which grants it the gated model), nowhere else.
    Step(("doctor",), env={}),  # the token read from Vault and sent to the Hub only
    Step(("doctor", "-o", "json"), exit=None),
    Step(("estimate", "llama3"), env={}, exit=None),  # gated: the stored token; the GPU from the nodes
    Step(("estimate", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-80GB"), exit=None),
    Step(("search", "Llama", "-o", "json"), env={}),  # the stored token: to the Hub only
    Step(("search", "Instruct", "--fits")),  # VLLM_HF_TOKEN: the list and the gated configs
    Step(("completion", "bash")),
    Step(("history",)),
    Step(("status",), exit=None),  # reads the API key to ask the router; 1 if anything is not Ready
    Step(("endpoints",)),
    Step(("logs", "llama3", "--no-follow")),
    Step(("router-logs", "--no-follow")),
    Step(("restart", "llama3", "--yes", "--timeout", "60"), exit=None),  # waits for the new pods
    Step(("port-forward", "0"), forwards=True, exit=None),  # 0: a free port; ends by SIGINT
    Step(("list-api-models",), env={}),  # the key read from the Secret
    Step(("test-completions", "llama3", "Say hello.")),  # the key from VLLM_API_KEY
    Step(("chat", "llama3", "-o", "json"), stdin="Say hello.\nAgain.\n/save chat.json\n"),  # two turns
    # bench: the key from VLLM_API_KEY on every request, and a saved run (the file must hold no secret)
    Step(
        (
            "bench",
            "llama3",
            "--requests",
            "2",
            "--input-len",
            "5",
            "--output-len",
            "4",
            "--save",
            "bench.json",
            "--detail",
        )
    ),
    # A key with a stray carriage return (a file with CRLF line ends): refused, never echoed.
    Step(("test-completions", "llama3"), env={"VLLM_API_KEY": API_KEY + "\r"}, exit=None),
    Step(("status",), env={"VLLM_API_KEY": API_KEY + "\r"}, exit=None),
    Step(("upgrade", "--yes", *VAULT)),
    Step(("rollback", "--yes")),
    Step(("recover", "--yes")),  # nothing stuck: says so, changes nothing
    Step(("set-hf-token", "--force-sync", *VAULT), stdin=TOKEN + "\n", env={}),
    Step(("set-hf-token", *VAULT), stdin=TOKEN + " pasted twice", env={}, exit=None),  # refused, not echoed
    # The old tool's positional forms: refused with the reason, the value never repeated.
    Step(("set-hf-token", TOKEN), env={}, exit=2),
    Step(("set-api-key", API_KEY), env={}, exit=2),
    Step(("set-hf-token",), stdin="", env={"VLLM_HF_TOKEN": TOKEN}),  # from the variable, backend auto
    Step(("delete-hf-token-secret", "--yes", *VAULT)),
    Step(("create-hf-token-secret", *VAULT)),
    Step(("delete-api-key-secret", "--yes", *VAULT)),
    Step(("create-api-key-secret", *VAULT)),
    Step(("rotate-api-key", "--yes", *VAULT)),
    Step(("get-api-key", *VAULT), learns="the key rotate-api-key made (vault)"),
    Step(("set-api-key", *VAULT), env={"VLLM_HF_TOKEN": TOKEN}),  # generated, not shown
    Step(("get-api-key", *VAULT), learns="the key set-api-key generated (vault)"),
    Step(("set-api-key", *VAULT), stdin=API_KEY, env={}),  # the canary back, from standard input
    Step(("delete-hf-token", "--yes", *VAULT)),
    Step(("delete-api-key", "--yes", *VAULT)),
    # -- kubernetes backend
    Step(("set-hf-token", *KUBE), stdin=TOKEN, env={}),
    Step(("get-hf-token", *KUBE), prints="the canary HF token"),
    Step(("set-api-key", *KUBE), stdin=API_KEY + "\n", env={}),
    Step(("create-hf-token-secret", *KUBE), stdin=TOKEN),
    Step(("create-api-key-secret", *KUBE), stdin=API_KEY),
    Step(("rotate-api-key", "--yes", *KUBE)),
    Step(("get-api-key", *KUBE), learns="the key rotate-api-key made (kubernetes)"),
    Step(("set-api-key", *KUBE), env={"VLLM_HF_TOKEN": TOKEN}),  # generated, not shown
    Step(("get-api-key", *KUBE), learns="the key set-api-key generated (kubernetes)"),
    Step(("delete-hf-token-secret", "--yes", *KUBE)),
    Step(("delete-api-key-secret", "--yes", *KUBE)),
    # the Secrets are gone: install takes both from the environment again, into Secrets; the
    # API key because VLLM_API_KEY is set (no --api-key), as the old tool took it
    Step(("install", "--yes", *KUBE)),
    Step(("get-hf-token", *KUBE), prints="the canary HF token"),
    Step(("get-api-key", *KUBE), prints="the canary API key"),
    Step(("set-hf-token", *KUBE), stdin=TOKEN, env={**SECRET_ENV, "VLLM_VAULT_BACKUP": "true"}),
    Step(("delete-hf-token", "--yes", *KUBE), env={**SECRET_ENV, "VLLM_VAULT_BACKUP": "true"}),
    Step(("delete-api-key", "--yes", *KUBE)),
    Step(("uninstall", "--yes", "--delete-secrets")),
    Step(("delete-namespace", "--yes")),
)

# Commands deliberately not run, each with its reason. Empty: every command runs above.
SKIPPED: dict[str, str] = {}

# A wrapper for helm and kubectl: one JSON line per start (argv, environment, the files
# under TMPDIR), then the real binary in its place. Python isolated and without site
# (-IS): the wrapper ignores PYTHONPATH and starts in 25 ms.
WRAPPER = """\
#!{python} -IS
import json, os, sys

files = {{}}
root = os.environ.get("TMPDIR")
if root and os.path.isdir(root):
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as handle:
                    files[path] = handle.read().decode("latin-1")
            except OSError as exc:
                files[path] = "<unreadable: %s>" % exc
record = {{"tool": {tool!r}, "argv": sys.argv, "env": dict(os.environ), "tmp": files}}
with open({log!r}, "a", encoding="utf-8") as handle:
    handle.write(json.dumps(record) + "\\n")
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""

# Imported by every Python process started with PYTHONPATH=<its folder>: vllmctl's
# loggers, its libraries' included, at DEBUG into the file LEAK_TEST_LOG names.
LOG_MARK = "every logger writes here at DEBUG"
SITECUSTOMIZE = f"""\
import logging
import os

LOG_MARK = {LOG_MARK!r}

if os.environ.get("LEAK_TEST_LOG"):
    logging.basicConfig(
        level=logging.DEBUG,
        filename=os.environ["LEAK_TEST_LOG"],
        format="%(name)s %(levelname)s %(message)s",
    )
    logging.captureWarnings(True)
    logging.getLogger("leak-test").debug(LOG_MARK)
"""

HELM_RELEASE_TYPE = "helm.sh/release.v1"
LEGIT_SECRETS = ("hf-token", "vllm-api-key")


def test_every_command_is_in_the_leak_table() -> None:
    ran = {step.args[0] for step in STEPS}
    missing = sorted(set(COMMANDS) - ran - set(SKIPPED))
    assert not missing, f"add these commands to STEPS in {__file__} (or to SKIPPED, with a reason): {missing}"
    assert not set(SKIPPED) & ran, "a command is both run and skipped"
    assert set(SKIPPED) <= set(COMMANDS), "SKIPPED names a command that no longer exists"


def test_canaries_are_well_formed() -> None:
    assert len(TOKEN) == 3 + 40 and TOKEN.startswith("hf_") and TOKEN[3:].isalnum()
    assert len(API_KEY) == 48 and API_KEY.isalnum()


# --- finding a secret ----------------------------------------------------------------------


def base64_forms(value: bytes) -> list[bytes]:
    """The base64 text that holds `value` wherever it starts in an encoded stream: for each
    of the three alignments, the characters that depend on the value's bytes alone."""
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value)
        first = math.ceil(8 * offset / 6)
        last = (8 * (offset + len(value))) // 6
        forms.append(encoded[first:last])
    return forms


class Needles:
    """Every secret, raw and in base64, and how to name what was found."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.forms: list[tuple[str, bytes]] = []
        for name, value in secrets.items():
            raw = value.encode()
            self.forms.append((name, raw))
            self.forms += [(f"{name} in base64", form) for form in base64_forms(raw)]

    def find(self, data: str | bytes) -> list[str]:
        blob = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        found = []
        for name, form in self.forms:
            if form in blob and name not in found:
                found.append(name)
        return found

    def redact(self, text: str) -> str:
        """`text` fit to print in a failure message."""
        for name, form in sorted(self.forms, key=lambda f: -len(f[1])):
            text = text.replace(form.decode(), f"<{name}>")
        return text


# --- running vllmctl -------------------------------------------------------------------------


@dataclass
class Ran:
    index: int
    step: Step
    code: int
    stdout: str
    stderr: str
    log: Path
    seconds: float
    request: str | None = None  # forwards: how the request through it went

    @property
    def label(self) -> str:
        return f"step {self.index} `vllmctl {' '.join(self.step.args)}`"


@dataclass
class Harness:
    cluster: ClusterEnv
    work: Path
    home: Path
    tmp: Path
    tools: Path
    env: dict[str, str]
    calls: Path
    ran: list[Ran] = field(default_factory=list)
    # (where, text) of every object seen in the namespace, each version once
    objects: list[tuple[str, str]] = field(default_factory=list)
    seen: set[tuple[str, str, str]] = field(default_factory=set)
    releases_decoded: int = 0

    def run(self, index: int, step: Step) -> Ran:
        import time

        log = self.tools / "logs" / f"step-{index:02d}.log"
        env = {**self.env, **step.env, "LEAK_TEST_LOG": str(log), "LEAK_TEST_STEP": str(index)}
        argv = [sys.executable, "-m", "vllmctl", step.args[0], "-v", *step.args[1:]]
        start = time.monotonic()
        if step.forwards:
            code, stdout, stderr, request = self.forward(argv, env)
        else:
            done = subprocess.run(
                argv, input=step.stdin, capture_output=True, text=True, cwd=self.work, env=env, timeout=180
            )
            code, stdout, stderr, request = done.returncode, done.stdout, done.stderr, None
        ran = Ran(index, step, code, stdout, stderr, log, time.monotonic() - start, request)
        self.ran.append(ran)
        self.snapshot(ran.label)
        return ran

    def forward(self, argv: list[str], env: dict[str, str]) -> tuple[int, str, str, str]:
        """Run a command that forwards a port until interrupted, and use the forward once."""
        import signal
        import threading
        import urllib.error
        import urllib.request

        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.work,
            env=env,
        )
        watchdog = threading.Timer(120, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            api = base_url.rstrip("/").removesuffix("/v1") + "/v1"
            chat = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}
            request = urllib.request.Request(
                f"{api}/chat/completions",
                data=json.dumps(chat).encode(),
                headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    outcome = f"HTTP {answer.status}"
            except (urllib.error.URLError, OSError, ValueError) as e:
                outcome = f"{type(e).__name__}: {e}"
            process.send_signal(signal.SIGINT)
            rest, stderr = process.communicate(timeout=60)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        return process.returncode, base_url + "\n" + rest, stderr, outcome

    def snapshot(self, after: str) -> None:
        """Every object in the namespace now (and the namespace itself)."""
        sb, namespace = self.cluster.sandbox, self.cluster.namespace
        listed: list[tuple[str, dict[str, Any]]] = []
        for kind, resource in R.items():
            if resource.namespaced:
                listed += [(kind, obj) for obj in sb.list(kind, namespace)]
        listed += [
            ("ExternalSecret", o) for o in sb.list("ExternalSecret", namespace, "external-secrets.io/v1")
        ]
        ns = sb.get("Namespace", None, namespace)
        if ns is not None:
            listed.append(("Namespace", ns))
        for kind, obj in listed:
            meta = obj.get("metadata") or {}
            key = (kind, str(meta.get("name")), str(meta.get("resourceVersion")))
            if key in self.seen:
                continue
            self.seen.add(key)
            where = f"{kind} {meta.get('name')} (in the namespace after {after})"
            if kind == "Secret" and obj.get("type") == HELM_RELEASE_TYPE:
                self.objects.append((f"{where}, the release helm stored, decoded", decode_release(obj)))
                self.releases_decoded += 1
            if kind == "Secret" and meta.get("name") in LEGIT_SECRETS:
                obj = {k: v for k, v in obj.items() if k not in ("data", "stringData")}
                where += ", all but its data"
            self.objects.append((where, json.dumps(obj)))

    def child_calls(self) -> list[dict[str, Any]]:
        if not self.calls.exists():
            return []
        return [json.loads(line) for line in self.calls.read_text(encoding="utf-8").splitlines()]


def decode_release(secret: dict[str, Any]) -> str:
    """Helm's storage: base64 (the Secret's data) of base64 of gzipped JSON."""
    raw = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    return gzip.decompress(raw).decode("utf-8")


def make_harness(cluster: ClusterEnv, work: Path, tmp_path: Path) -> Harness:
    home, tmp, tools = tmp_path / "leak-home", tmp_path / "leak-tmp", tmp_path / "leak-tools"
    bin_dir, py_dir = tools / "bin", tools / "python"
    for folder in (home, tmp, bin_dir, py_dir, tools / "logs"):
        folder.mkdir(parents=True)
    calls = tools / "calls.jsonl"
    for tool in ("helm", "kubectl"):
        real = shutil.which(tool)
        assert real is not None, f"{tool} is not on PATH"
        wrapper = bin_dir / tool
        wrapper.write_text(WRAPPER.format(python=sys.executable, tool=tool, log=str(calls), real=real))
        wrapper.chmod(0o755)
    (py_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        **cluster.env,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PYTHONPATH": f"{py_dir}{os.pathsep}{REPO}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "LANG": "C.UTF-8",
        "VLLM_HELM": str(bin_dir / "helm"),
        "VLLM_KUBECTL": str(bin_dir / "kubectl"),
    }
    return Harness(cluster, work, home, tmp, tools, env, calls)


def report(leaks: list[str], problems: list[str], needles: Needles, most: int = 60) -> None:
    """Fail naming every place a secret was found, then what went wrong in the flow, with
    secrets replaced by their names. Not an assert: pytest would print the lists it
    compared, and a stderr kept for a message may hold a secret."""
    text = []
    for title, lines in (("secrets leaked", leaks), ("the flow did not go as the leak test needs", problems)):
        if lines:
            text += [f"{title}:", *(needles.redact(line) for line in lines[:most])]
            if len(lines) > most:
                text.append(f"... and {len(lines) - most} more")
    pytest.fail("\n".join(text), pytrace=False)


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                yield Path(folder) / name


# --- the test ------------------------------------------------------------------------------------


def test_no_secret_leaks_from_any_command(cluster: ClusterEnv, isolated: Path, tmp_path: Path) -> None:
    (isolated / "models.yaml").write_text(MODELS)
    cluster.sandbox.call(cluster.sandbox.hub.add_token, TOKEN, ["meta-llama/Llama-3.1-8B-Instruct"])
    harness = make_harness(cluster, isolated, tmp_path)
    audit_log = cluster.sandbox.vault.audit_log
    audit_start = audit_log.stat().st_size  # OpenBao's audit lines of this test come after it
    secrets = {
        **CANARIES,
        # vllmctl's own credentials: nothing it prints, writes or starts may hold them either.
        "the Vault token (VAULT_TOKEN)": cluster.env["VAULT_TOKEN"],
        "the cluster's bearer token (kubeconfig)": cluster.sandbox.token,
    }
    problems: list[str] = []  # the flow not going as it must (checked after the leaks)

    for index, step in enumerate(STEPS, 1):
        ran = harness.run(index, step)
        if step.exit is not None and ran.code != step.exit:
            problems.append(f"{ran.label} exited {ran.code}, not {step.exit}; stderr: {ran.stderr[-1500:]}")
        if step.prints is not None and ran.stdout != secrets[step.prints] + "\n":
            problems.append(
                f"{ran.label} did not print {step.prints} (and only it) on stdout: {ran.stdout!r}"
            )
        if step.forwards and ran.request != "HTTP 200":
            problems.append(f"{ran.label}: the request with the API key through it got {ran.request}")
        if step.learns is not None:
            value = ran.stdout.removesuffix("\n")
            if len(value) == 48 and value.isalnum() and value not in secrets.values():
                secrets[step.learns] = value
            else:
                problems.append(f"{ran.label} printed no new 48-character key: {ran.stdout!r}")

    needles = Needles(secrets)
    leaks: list[str] = []

    def check(where: str, data: str | bytes) -> None:
        leaks.extend(f"{name} in {where}" for name in needles.find(data))

    # what each command printed and logged
    for ran in harness.ran:
        if ran.step.prints is None and ran.step.learns is None:  # get-* may print the value, only
            check(f"the stdout of {ran.label}", ran.stdout)
        check(f"the stderr of {ran.label}", ran.stderr)
        log = ran.log.read_bytes() if ran.log.exists() else b""
        check(f"the log output of {ran.label} ({ran.log.name})", log)
        if LOG_MARK.encode() not in log:
            problems.append(f"{ran.label}: its log output was not captured (no sitecustomize?)")

    # each helm and kubectl vllmctl started: argv, environment, the files under TMPDIR then
    calls = harness.child_calls()
    labels = {str(r.index): r.label for r in harness.ran}
    values_files_seen = 0
    for number, call in enumerate(calls, 1):
        started = (
            f"{call['tool']} (child {number}, started by {labels.get(call['env'].get('LEAK_TEST_STEP'))})"
        )
        for position, arg in enumerate(call["argv"]):
            check(f"argv[{position}] of {started}", arg)
        for name, value in call["env"].items():
            check(f"the environment variable {name} of {started}", f"{name}={value}")
            if name in CHILD_SECRET_ENV:  # VAULT_TOKEN too: no child needs it (vllmctl/cluster/tools.py)
                leaks.append(f"the variable {name} in the environment of {started}")
        for path, text in call["tmp"].items():
            values_files_seen += Path(path).name.startswith("vllmctl-values-")
            check(f"{path}, under TMPDIR while {started} ran", text.encode("latin-1"))

    # every file left behind, and every file name
    for path in files_under(harness.work, harness.home, harness.tmp):
        check(f"the file {path}", path.read_bytes())
        check("a file name", str(path))

    # the cluster, after every command
    for where, text in harness.objects:
        check(where, text)

    # OpenBao's audit log: the server HMACs the values it logs, so a secret in the clear there
    # is one vllmctl put where no value belongs (a request path, a header, metadata).
    with audit_log.open("rb") as log:
        log.seek(audit_start)
        audited = log.read()
    check(f"OpenBao's audit log ({audit_log.name})", audited)
    requests = [line for line in audited.splitlines() if b'"type":"request"' in line]
    writes = [line for line in requests if b'"operation":"create"' in line or b'"operation":"update"' in line]
    if not any(b"secret/data/vllm/huggingface" in line and b'"data":' in line for line in writes):
        problems.append("OpenBao's audit log holds no write of the HF token: the audit check is vacuous")

    timings = ", ".join(f"{r.index}:{r.seconds:.1f}s" for r in harness.ran)
    print(f"leak test: {len(harness.ran)} commands, {len(calls)} child processes; seconds per step {timings}")

    # The checks above saw real traffic, not nothing.
    tools = {c["tool"] for c in calls}
    if tools != {"helm", "kubectl"}:
        problems.append(f"the wrappers did not see both helm and kubectl start: only {sorted(tools)}")
    if not any(c["tool"] == "helm" and "upgrade" in c["argv"] for c in calls):
        problems.append("helm upgrade never ran")
    if not values_files_seen:
        problems.append("no helm run saw vllmctl's values file under TMPDIR: the TMPDIR check is vacuous")
    if not harness.releases_decoded:
        problems.append("no release helm stored was decoded: the release check is vacuous")
    if leaks or problems:
        report(leaks, problems, needles)
