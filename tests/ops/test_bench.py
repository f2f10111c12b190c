"""vllmctl bench end to end: through vllmctl's own port-forward to the sandbox's router
stand-in, whose pacing (time to first token, tokens/s) is known, so the measured TTFT and
TPOT can be checked against it; sweeps, --save/--compare, errors, Ctrl-C and --plot."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.conftest import Run
from tests.ops import test_api_commands as api
from tests.ops.test_api_commands import eventually, pace, requests_to, router, vllmctl_process
from tests.sandbox.fixtures import ClusterEnv

# The release on the sandbox, and the check that no thread of ours is left (that module's).
installed = pytest.fixture(api.installed.__wrapped__)
no_leftover_threads = pytest.fixture(autouse=True)(api.no_leftover_threads.__wrapped__)

# Prompts of 40 words: the stand-in echoes them, so every answer is cut at --output-len.
FIXED = ("--input-len", "40", "--output-len", "20")


def bench(run: Run, *args: str, env: dict[str, str] | None = None) -> tuple[Any, dict[str, Any]]:
    result = run("bench", "llama3", *FIXED, *args, "-o", "json", env=env)
    return result, json.loads(result.stdout) if result.stdout.strip() else {}


def within(measured: float | None, expected: float, share: float = 0.10) -> bool:
    return measured is not None and abs(measured - expected) <= share * expected


@pytest.mark.parametrize(("concurrency", "requests"), [(1, 3), (8, 8)])
def test_ttft_and_tpot_match_the_routers_pacing(
    run: Run, installed: ClusterEnv, concurrency: int, requests: int
) -> None:
    # 1.5 s before the first token and 100 ms between tokens: the pacing dwarfs the client's,
    # the tunnel's and the stand-in's own overhead (all in this process: 10-100 ms for a
    # burst of 8, and 2-5 ms a token, on a 2-core machine busy with other work).
    ttft, rate, tokens = 1.5, 10.0, 12
    pace(installed, ttft, rate)
    result = run(
        "bench", "llama3", "--input-len", "40", "--output-len", str(tokens), "--requests", str(requests),
        "--concurrency", str(concurrency), "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    m = data["metrics"]
    assert (m["completed"], m["failed"]) == (requests, 0)
    assert m["total_output_tokens"] == tokens * requests  # the server's usage: max_tokens each
    assert m["total_input_tokens"] == 40 * requests  # 40 one-token words, as the stand-in counts
    assert m["output_counted_from_chunks"] == 0
    for stat in ("mean", "median"):
        assert within(m["ttft_ms"][stat], ttft * 1000), m["ttft_ms"]
        assert within(m["tpot_ms"][stat], 1000 / rate), m["tpot_ms"]
        assert within(m["itl_ms"][stat], 1000 / rate), m["itl_ms"]
    # E2EL = TTFT + the gaps; throughput = tokens over the run's duration.
    assert within(m["e2el_ms"]["median"], ttft * 1000 + (tokens - 1) * 1000 / rate)
    assert m["output_throughput"] == pytest.approx(m["total_output_tokens"] / m["duration_s"], rel=1e-3)
    assert m["request_throughput"] == pytest.approx(requests / m["duration_s"], rel=1e-3)
    assert data["settings"]["concurrency"] == concurrency
    assert data["endpoint"] == {
        "via": "port-forward", "base_url": None, "label": "the router", "path": "/v1/completions",
    }  # fmt: skip
    assert requests_to(installed, "/v1/completions") == requests


def test_the_table_says_where_the_numbers_come_from(run: Run, installed: ClusterEnv) -> None:
    pace(installed, 0.01, 1000.0)
    result = run("bench", "llama3", *FIXED, "--requests", "4", "--concurrency", "2", "--slo", "ttft=5000")
    assert result.exit_code == 0, result.stderr
    rows = {line[:26].strip(): line[26:].strip() for line in result.stdout.splitlines() if line[:1] != " "}
    assert rows["successful requests"] == "4"
    assert rows["failed requests"] == "0"
    assert rows["load"] == "4 requests, 2 at a time, rate inf"
    assert rows["prompts"].startswith("synthetic")
    assert rows["request goodput"].endswith("req/s (ttft <= 5000 ms)")
    assert "TTFT (ms)" in result.stdout and "TPOT (ms)" in result.stdout and "E2EL (ms)" in result.stdout
    help_text = run("bench", "--help").stdout
    for words in ("TTFT", "TPOT", "ITL", "E2EL", "usage", "goodput", "docs/bench.md"):
        assert words in help_text


def test_a_sweep_runs_each_point_and_shows_a_table(run: Run, installed: ClusterEnv) -> None:
    pace(installed, 0.01, 1000.0)
    result = run("bench", "llama3", *FIXED, "--requests", "4", "--sweep", "concurrency=1,2")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["CONCURRENCY", "OK", "FAILED", "REQ/S"]
    assert [line.split()[:3] for line in lines[1:]] == [["1", "4", "0"], ["2", "4", "0"]]
    assert requests_to(installed, "/v1/completions") == 8
    as_json = run("bench", "llama3", *FIXED, "--requests", "2", "--sweep", "rate=50,inf", "-o", "json")
    data = json.loads(as_json.stdout)  # strict JSON: a rate of inf is null
    assert data["sweep"] == {"parameter": "rate", "values": [50, None]}
    assert [p["settings"]["request_rate"] for p in data["points"]] == [50, None]
    assert [p["settings"]["concurrency"] for p in data["points"]] == [None, None]  # no limit with a rate
    table = run("bench", "llama3", *FIXED, "--requests", "2", "--sweep", "rate=inf")
    assert table.stdout.splitlines()[1].split()[:3] == ["inf", "2", "0"]
    assert "GOODPUT" not in table.stdout
    # With --slo the table says which point meets it: every request does (a generous TTFT).
    slo = run(
        "bench", "llama3", *FIXED, "--requests", "2", "--sweep", "concurrency=1,2", "--slo", "ttft=60000"
    )
    header, *rows = slo.stdout.splitlines()
    assert header.split()[-2:] == ["GOODPUT", "REQ/S"]
    assert all(float(row.split()[-1]) > 0 for row in rows)


def test_save_then_compare(run: Run, installed: ClusterEnv, tmp_path: Path) -> None:
    pace(installed, 0.01, 1000.0)
    secret = "bench-key-that-must-not-leak"
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    saved = run(
        "bench",
        "llama3",
        *FIXED,
        "--requests",
        "3",
        "--save",
        str(a),
        "--detail",
        env={"VLLM_API_KEY": secret},
    )
    assert saved.exit_code == 0, saved.stderr
    assert f"run saved to {a}" in saved.stderr
    text = a.read_text()
    assert secret not in text and secret not in saved.output
    data = json.loads(text)
    assert data["format"] == "vllmctl-bench/1" and data["model"] == "llama3"
    assert data["release"]["chart_version"] == "0.1.8"  # the test chart's
    assert data["release"]["router_image"].startswith("lmcache/lmstack-router:")
    assert data["release"]["release"] == installed.release
    assert data["release"]["engine_image"] == "vllm/vllm-openai:v0.10.1"  # VLLM_MODEL_TAG
    assert data["prompts"]["source"].startswith("synthetic")
    assert len(data["requests"]) == 3 and all(r["ok"] and len(r["itl_ms"]) == 19 for r in data["requests"])
    pace(installed, 0.05, 1000.0)
    again = run("bench", "llama3", *FIXED, "--requests", "3", "--save", str(b))
    assert again.exit_code == 0, again.stderr
    assert "requests" not in json.loads(b.read_text())  # no --detail
    compared = run("bench", "--compare", str(a), str(b))
    assert compared.exit_code == 0, compared.stderr
    rows = {line[:30].strip(): line[30:].split() for line in compared.stdout.splitlines()[1:]}
    ttft = rows["TTFT median (ms)"]
    assert float(ttft[1]) > float(ttft[0]) and ttft[2].startswith("+") and ttft[2].endswith("%")
    assert rows["successful requests"] == ["3", "3", "+0.0%"]
    as_json = json.loads(run("bench", "--compare", str(a), str(b), "-o", "json").stdout)
    change = next(r for r in as_json["metrics"] if r["metric"] == "ttft_ms.median")
    assert change["change_pct"] == pytest.approx((change["b"] - change["a"]) / change["a"] * 100, abs=0.01)
    assert as_json["differences"] == [] and "differ" not in compared.stderr  # the same load
    c = tmp_path / "c.json"
    assert (
        run("bench", "llama3", *FIXED, "--requests", "3", "--concurrency", "2", "--save", str(c)).exit_code
        == 0
    )
    other = run("bench", "--compare", str(a), str(c))
    assert "the runs differ in more than the server: settings.concurrency: 1 vs 2" in other.stderr
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    refused = run("bench", "--compare", str(a), str(junk))
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        f"error: --compare {junk}: not a saved benchmark run (no format 'vllmctl-bench/1' with metrics); "
        "give a file `vllmctl bench --save` wrote."
    )
    junk.write_text("{not json")
    assert f"--compare {junk}:1:2: not JSON" in run("bench", "--compare", str(a), str(junk)).stderr


def test_errors_are_counted_by_kind_and_never_averaged(run: Run, installed: ClusterEnv) -> None:
    pace(installed, 0.01, 1000.0)
    installed.sandbox.call(router(installed).fail_next, 3, 503, "engine overloaded", "/v1/completions")
    result, data = bench(run, "--requests", "6")
    assert result.exit_code == 0, result.stderr  # some failed: a warning, the metrics of the rest
    m = data["metrics"]
    assert (m["completed"], m["failed"], m["errors"]) == (3, 3, {"HTTP 503": 3})
    assert m["error_details"]["HTTP 503"] == "engine overloaded"
    assert m["total_output_tokens"] == 60 and m["ttft_ms"]["mean"] >= 10  # the 3 that succeeded
    assert "3 of 6 requests failed (HTTP 503: 3); the first: HTTP 503: engine overloaded" in result.stderr
    installed.sandbox.call(router(installed).fail_next, 2, 500, "boom", "/v1/completions")
    failing, data = bench(run, "--requests", "2")
    assert failing.exit_code == 1
    assert data["metrics"]["completed"] == 0 and data["metrics"]["ttft_ms"]["mean"] is None
    assert "error: every request failed (HTTP 500: 2); the first: HTTP 500: boom" in failing.stderr
    # A name the router does not list is refused before any load, naming what it serves.
    sent = requests_to(installed, "/v1/completions")
    unknown = run("bench", "nope", *FIXED, "--requests", "1")
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("error: nope is not served by the router; it serves llama3, ")
    assert requests_to(installed, "/v1/completions") == sent


def test_a_wrong_api_key_says_which_key_was_sent(run: Run, installed: ClusterEnv) -> None:
    assert run("set-api-key", "--secret-backend", "kubernetes", input="").exit_code == 0
    assert run("upgrade", "--yes").exit_code == 0  # the chart hands the key to the engines
    ok, _ = bench(run, "--requests", "1")  # the key from the Secret, through the port-forward
    assert ok.exit_code == 0, ok.stderr
    wrong, _ = bench(run, "--requests", "1", env={"VLLM_API_KEY": "wrong-key"})
    assert wrong.exit_code == 1 and "HTTP 401" in wrong.stderr
    assert "(the API key sent: VLLM_API_KEY)" in wrong.stderr and "wrong-key" not in wrong.stderr


def test_a_save_path_that_cannot_be_written_is_refused_before_any_load(
    run: Run, installed: ClusterEnv, tmp_path: Path
) -> None:
    sent = requests_to(installed, "/v1/completions")
    for target, words in (
        (tmp_path / "missing" / "run.json", "does not exist; create it first"),
        (tmp_path, "is a directory"),  # click.Path(dir_okay=False) says it
    ):
        result = run("bench", "llama3", *FIXED, "--requests", "1", "--save", str(target))
        assert result.exit_code == 2 and words in result.stderr, result.stderr
    assert requests_to(installed, "/v1/completions") == sent


def test_chat_duration_and_rate(run: Run, installed: ClusterEnv) -> None:
    pace(installed, 0.01, 1000.0)
    chat, data = bench(run, "--requests", "2", "--chat")
    assert chat.exit_code == 0, chat.stderr
    assert data["endpoint"]["path"] == "/v1/chat/completions"
    assert requests_to(installed, "/v1/chat/completions") == 2
    # TTFT is to the first chunk of text, not to vLLM's opening role-only chunk.
    assert data["metrics"]["ttft_ms"]["median"] >= 10
    timed, data = bench(run, "--duration", "0.5", "--concurrency", "2")
    assert timed.exit_code == 0, timed.stderr
    m = data["metrics"]
    assert data["settings"]["requests"] is None and data["settings"]["sent"] == m["completed"] > 2
    assert m["failed"] == 0 and data["cancelled_in_flight"] == 0  # those in flight were waited for
    paced, data = bench(run, "--requests", "3", "--request-rate", "20", "--seed", "7")
    assert paced.exit_code == 0 and data["metrics"]["completed"] == 3
    assert data["settings"]["request_rate"] == 20 and data["settings"]["seed"] == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sweep", "speed=1"), "--sweep 'speed=1': give concurrency=1,2,4 or rate=1,2,4."),
        (("--slo", "itl=3"), "--slo 'itl=3': give KEY=MILLISECONDS pairs"),
        (("--input-len", "9-3"), "--input-len '9-3': lengths start at 1"),
        (("--request-rate", "0"), "--request-rate '0': give requests per second above 0, or inf."),
        (("--duration", "2", "--request-rate", "inf"), "--duration without --requests needs --concurrency"),
        (("--concurrency", "2", "--sweep", "concurrency=1,2"), "give --concurrency or --sweep"),
        (("--plot", "out.pdf"), "--plot out.pdf: the file must end in .png or .svg."),
    ],
)
def test_usage_mistakes_name_the_flag(run: Run, args: tuple[str, ...], message: str) -> None:
    result = run("bench", "llama3", "--base-url", "http://127.0.0.1:9", *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ctrl_c_ends_the_run_and_still_prints_the_metrics(installed: ClusterEnv, tmp_path: Path) -> None:
    pace(installed, 0.05, 40.0)  # about 0.5 s a request
    child = vllmctl_process(
        "bench", "llama3", *FIXED, "--requests", "200", "--concurrency", "2", "-o", "json",
        cluster=installed, cwd=tmp_path,
    )  # fmt: skip
    try:
        eventually(lambda: requests_to(installed, "/v1/completions") >= 6, timeout=30)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    data = json.loads(out)
    assert data["interrupted"] is True
    assert data["metrics"]["completed"] >= 4 and data["metrics"]["failed"] == 0
    assert data["cancelled_in_flight"] >= 1
    assert data["metrics"]["ttft_ms"]["median"] is not None
    assert "Interrupted: the metrics above are of the" in err and "Traceback" not in err


BLOCK_MATPLOTLIB = """\
import sys

class _NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoMatplotlib())
"""


def test_plot_without_matplotlib_says_what_to_install_before_any_load(
    installed: ClusterEnv, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_MATPLOTLIB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    env.update(installed.env, VLLM_NAMESPACE=installed.namespace, PYTHONPATH=str(blocker))
    done = subprocess.run(
        [sys.executable, "-m", "vllmctl", "bench", "llama3", "--plot", "lat.png", "--requests", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr
        == "error: --plot needs matplotlib, which is not installed: run pip install 'vllmctl[plot]' "
        "(from a checkout: pip install '.[plot]'; or matplotlib itself).\n"
    )
    assert requests_to(installed, "/v1/completions") == 0
    assert not (tmp_path / "lat.png").exists()


def test_plot_of_a_sweep(run: Run, installed: ClusterEnv, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pace(installed, 0.01, 1000.0)
    svg = tmp_path / "sweep.svg"
    result = run(
        "bench", "llama3", *FIXED, "--requests", "2", "--sweep", "concurrency=1,2", "--plot", str(svg)
    )
    assert result.exit_code == 0, result.stderr
    assert f"plot written to {svg}" in result.stderr
    text = svg.read_text()
    assert "<svg" in text and "concurrency=2" in text


# --- against a scripted server: what bench sends, and the failures a stand-in cannot make ---


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the events of `server.script` (then closes), and records bodies."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # bench's warm-up: GET /v1/models
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self) -> None:
        server: Any = self.server
        server.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in server.script:
            self.wfile.write(f"data: {event}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.bodies, server.script = [], []
    thread = threading.Thread(target=server.serve_forever, name="scripted server", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def chunk(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "text": text, "finish_reason": None}]})


def test_what_bench_sends_and_the_failures_it_counts(run: Run, scripted: Any) -> None:
    url = f"http://127.0.0.1:{scripted.server_address[1]}"
    key = {"VLLM_API_KEY": "k"}  # no cluster to ask for one
    scripted.script = [chunk(" a"), chunk(" b"), chunk(" c"), "[DONE]"]  # no usage: counted
    result = run("bench", "m", "--base-url", url, "--requests", "2", "--ignore-eos", "--output-len", "3",
                 "--input-len", "5", "-o", "json", env=key)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    body = scripted.bodies[0]
    assert body["ignore_eos"] is True and body["max_tokens"] == 3 and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True} and len(body["prompt"].split()) == 5
    m = json.loads(result.stdout)["metrics"]
    assert (m["completed"], m["total_output_tokens"], m["output_counted_from_chunks"]) == (2, 6, 2)
    assert m["total_input_tokens"] == 10  # the prompts' own counts, without usage
    scripted.script = [chunk(" a")]  # the stream ends without [DONE]
    dropped = run("bench", "m", "--base-url", url, "--requests", "2", "-o", "json", env=key)
    assert dropped.exit_code == 1
    assert json.loads(dropped.stdout)["metrics"]["errors"] == {"stream dropped": 2}
    scripted.script = [chunk(" a"), json.dumps({"error": {"message": "engine died"}}), "[DONE]"]
    broken = run("bench", "m", "--base-url", url, "--requests", "1", "-o", "json", env=key)
    assert json.loads(broken.stdout)["metrics"]["errors"] == {"error event": 1}
    assert "the first: error event: engine died" in broken.stderr
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    scripted.script = [json.dumps(role), "[DONE]"]  # the opening role chunk, then nothing
    chat = run("bench", "m", "--base-url", url, "--requests", "1", "--chat", env=key)
    assert "messages" in scripted.bodies[-1] and "prompt" not in scripted.bodies[-1]
    assert chat.exit_code == 1  # no chunk with text: no first token
    assert "every request failed (no tokens: 1)" in chat.stderr


def test_the_live_progress_line_at_a_terminal(installed: ClusterEnv, tmp_path: Path) -> None:
    pace(installed, 0.05, 100.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    env.update(installed.env, VLLM_NAMESPACE=installed.namespace, TERM="xterm", COLUMNS="150", NO_COLOR="1")
    child = pexpect.spawn(
        sys.executable, ["-m", "vllmctl", "bench", "llama3", *FIXED, "--requests", "6", "--concurrency", "2"],
        cwd=str(tmp_path), env=env, encoding="utf-8", timeout=60, dimensions=(40, 150),
    )  # fmt: skip
    child.expect(r"bench \[[#-]+\] \d+/6 done, 0 errors, \d+ in flight, \d+ output tok/s")
    child.expect("successful requests +6")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


# --- the prompts bench sends: the model's tokenizer, --tokenizer, a dataset -----------------


def sent_token_counts(scripted: Any, tokenizer_path: Path) -> list[int]:
    from tokenizers import Tokenizer

    fresh = Tokenizer.from_file(str(tokenizer_path))  # loaded again: not bench's own copy
    return [len(fresh.encode(body["prompt"]).ids) for body in scripted.bodies]


def test_prompts_are_cut_by_the_models_tokenizer_from_the_hub(
    run: Run, cluster: ClusterEnv, models_file: Path, scripted: Any, tmp_path: Path
) -> None:
    from tests.ops.test_bench_prompts import bpe, saved

    models_file.write_text(api.MODELS)  # llama3: meta-llama/Llama-3.1-8B-Instruct, gated: false
    path = saved(bpe(2000), tmp_path / "tok")
    repo, hub = "meta-llama/Llama-3.1-8B-Instruct", cluster.sandbox.hub
    cluster.sandbox.call(lambda: hub.add_model(repo, config={}, files={"tokenizer.json": path.read_bytes()}))
    scripted.script = [chunk(" a"), "[DONE]"]
    url = f"http://127.0.0.1:{scripted.server_address[1]}"
    result = run("bench", "llama3", "--base-url", url, "--input-len", "17", "--requests", "3",
                 "-o", "json", env={"VLLM_API_KEY": "k"})  # fmt: skip
    assert result.exit_code == 0, result.stderr
    prompts = json.loads(result.stdout)["prompts"]
    assert prompts["tokenizer"] == repo and "exact token counts by" in prompts["source"]
    assert sent_token_counts(scripted, path) == [17, 17, 17]
    assert len({body["prompt"] for body in scripted.bodies}) == 3  # distinct prompts


def test_tokenizer_flag_and_a_dataset_of_conversations(run: Run, scripted: Any, tmp_path: Path) -> None:
    from tests.ops.test_bench_prompts import bpe, saved

    path = saved(bpe(2000), tmp_path / "tok")
    scripted.script = [chunk(" a"), "[DONE]"]
    url, key = f"http://127.0.0.1:{scripted.server_address[1]}", {"VLLM_API_KEY": "k"}
    result = run("bench", "m", "--base-url", url, "--tokenizer", str(path), "--input-len", "9-11",
                 "--requests", "4", "-o", "json", env=key)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["prompts"]["tokenizer"] == str(path)
    assert all(9 <= n <= 11 for n in sent_token_counts(scripted, path))
    missing = run("bench", "m", "--base-url", url, "--tokenizer", str(tmp_path / "nope.json"), env=key)
    assert missing.exit_code != 0 and "Traceback" not in missing.stderr
    assert "nope.json" in missing.stderr
    # Conversations have no one prompt for /v1/completions: they go to chat, said so.
    dataset = tmp_path / "chats.jsonl"
    dataset.write_text('{"messages": [{"role": "user", "content": "hi there"}]}\n')
    role = {"choices": [{"index": 0, "delta": {"content": " a"}}]}
    scripted.script, scripted.bodies = [json.dumps(role), "[DONE]"], []
    chats = run("bench", "m", "--base-url", url, "--dataset", str(dataset), "--requests", "2", env=key)
    assert chats.exit_code == 0, chats.stderr
    assert "holds conversations (messages): sending them to /v1/chat/completions" in chats.stderr
    assert [b["messages"] for b in scripted.bodies] == [[{"role": "user", "content": "hi there"}]] * 2
