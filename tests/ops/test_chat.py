"""`vllmctl chat` end to end against the sandbox's router stand-in: at a terminal (pexpect:
turns, the slash commands, Ctrl-C during a reply and at the prompt, the history file) and
without one (stdin lines, -o json, errors). The stand-in echoes the last user message and
counts every message's tokens as prompt tokens, so the usage it sends shows what each
request carried."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from tests.conftest import Run
from tests.ops import test_api_commands
from tests.ops.test_api_commands import (
    FILLER_TEXT,
    SERVED,
    answer,
    eventually,
    pace,
    requests_to,
    router,
)
from tests.sandbox.fixtures import ClusterEnv
from tests.sandbox.router import tokenize
from vllmctl.apis.openai_api import CompletionRequest
from vllmctl.ops.chat import Conversation, history_path, parse_line, prepare_history_file

# test_api_commands' fixtures: a release serving llama3, and no thread of ours left at the end.
installed = test_api_commands.installed
no_leftover_threads = test_api_commands.no_leftover_threads

KEY = "sk-chat-test-key-0123456789"
# 207 tokens back: about 41 s at 5 tokens/s, far longer than the wait for the stream to close.
LONG = " ".join(f"word{i}" for i in range(200))


def tokens(text: str) -> int:
    return len(tokenize(text))


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def router_port(cluster: ClusterEnv) -> int:
    router(cluster)  # made on first use
    return int(cluster.sandbox.routers[cluster.namespace][1])


def running(cluster: ClusterEnv) -> float:
    """The stand-in's own count of answers still being generated (its /metrics gauge)."""
    text = httpx.get(f"http://127.0.0.1:{router_port(cluster)}/metrics", trust_env=False).text
    (value,) = re.findall(r"^vllm:num_requests_running\{[^}]*\} (\S+)$", text, re.M)
    return float(value)


# --- without a terminal -----------------------------------------------------------------------


def test_piped_lines_are_the_turns_of_one_conversation(run: Run, installed: ClusterEnv) -> None:
    result = run("chat", "llama3", input="hi there\n\nagain please\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == answer("hi there") + "\n" + answer("again please") + "\n"
    assert result.stderr == ""  # footers only with -v
    pace(installed, 0.1, 50.0)  # the role chunk comes at once, the first text after 0.1 s
    as_json = run("chat", "llama3", "-o", "json", input="hi there\nagain please\n")
    assert as_json.exit_code == 0, as_json.stderr
    first, second = records(as_json.stdout)
    assert first["text"] == answer("hi there") and first["model"] == "llama3"
    assert first["finish_reason"] == "stop" and first["stopped"] is False
    assert first["usage"]["completion_tokens"] == tokens(answer("hi there"))
    assert first["time_to_first_token"] >= 0.1 and first["tokens_per_second"] > 0
    assert first["seconds"] >= 0.1 + (first["usage"]["completion_tokens"] - 1) / 50
    # The second request carried both turns: the stand-in counts every message's tokens.
    assert first["usage"]["prompt_tokens"] == tokens("hi there")
    assert second["usage"]["prompt_tokens"] == tokens("hi there") + tokens(answer("hi there")) + 2
    assert second["text"] == answer("again please")
    assert requests_to(installed, "/v1/chat/completions") == 4
    assert requests_to(installed, "/v1/models") == 2  # the model is checked first, once a run


def test_piped_commands_system_reset_save(run: Run, installed: ClusterEnv, isolated: Path) -> None:
    lines = (
        f"one\n/reset\ntwo words\n/system Be brief.\nthree\n/save saved.json\n/model {SERVED[1]}\n//slash\n"
    )
    result = run("chat", "llama3", "-o", "json", "--system", "Be kind.", input=lines)
    assert result.exit_code == 0, result.stderr
    one, two, three, slash = records(result.stdout)
    assert one["usage"]["prompt_tokens"] == 2 + 1  # --system's message, then "one"
    assert two["usage"]["prompt_tokens"] == 2 + 2  # after /reset: the system message and "two words"
    assert three["usage"]["prompt_tokens"] == 2 + 2 + tokens(answer("two words")) + 1
    assert slash["text"] == answer("/slash")  # `//` sends a line that starts with /
    assert slash["model"] == SERVED[1] and [one["model"], two["model"], three["model"]] == ["llama3"] * 3
    assert "Conversation reset (1 turn forgotten)." in result.stderr
    saved = json.loads((isolated / "saved.json").read_text())
    assert saved == {
        "model": "llama3",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "two words"},
            {"role": "assistant", "content": answer("two words")},
            {"role": "user", "content": "three"},
            {"role": "assistant", "content": answer("three")},
        ],
    }
    assert "Saved 5 messages to saved.json." in result.stderr


def test_no_stream_max_tokens_and_footers_with_verbose(run: Run, installed: ClusterEnv) -> None:
    result = run("chat", "llama3", "--no-stream", "--max-tokens", "3", "-v", input="hi there friend\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "echo: hi there\n"  # three tokens
    footer = result.stderr.splitlines()[-1]
    assert "time to first token" not in footer  # nothing streamed
    assert "tokens/s" in footer and "tokens 3 prompt, 3 completion" in footer
    data = records(run("chat", "llama3", "--max-tokens", "2", "-o", "json", input="x y z\n").stdout)
    assert data[0]["finish_reason"] == "length" and data[0]["text"] == "echo: x"


def test_an_unknown_model_lists_what_is_served(run: Run, installed: ClusterEnv) -> None:
    result = run("chat", "qwen", input="hi\n")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: qwen is not served by the router; it serves {', '.join(SERVED)}: name one of those.\n"
    )
    assert requests_to(installed, "/v1/chat/completions") == 0  # checked before the first turn
    missing = run("chat", input="hi\n")  # no MODEL and no terminal to ask at
    assert missing.exit_code == 2
    assert "MODEL (the first argument: one of llama3) is needed" in missing.stderr
    command = run("chat", "llama3", input="hi\n/etc/hosts, what is it?\n")
    assert command.exit_code == 2 and command.stdout == answer("hi") + "\n"
    assert "line 2 of stdin: /etc/hosts, is not a chat command" in command.stderr
    assert "start the line with // to send it as a message." in command.stderr
    switch = run("chat", "llama3", input="hi\n/model qwen\n")
    assert switch.exit_code == 2
    assert f"line 2 of stdin: qwen is not served by the router; it serves {SERVED[0]}" in switch.stderr


def test_server_errors_end_a_piped_chat_with_one_sentence(run: Run, installed: ClusterEnv) -> None:
    r = router(installed)
    installed.sandbox.call(r.fail_next, 1, 503, "engine overloaded, try later", "/v1/chat/completions")
    busy = run("chat", "llama3", input="hi\n")
    assert busy.exit_code == 1 and busy.stdout == ""
    assert "llama3: the router answered 503 Service Unavailable: engine overloaded, try later" in busy.stderr
    assert "`vllmctl status`" in busy.stderr
    installed.sandbox.call(r.fail_next, 1, 401, "Unauthorized", "/v1/chat/completions")
    refused = run("chat", "llama3", input="hi\n", env={"VLLM_API_KEY": KEY})
    assert refused.exit_code == 1
    assert "401 Unauthorized: Unauthorized" in refused.stderr
    assert "the API key sent: VLLM_API_KEY" in refused.stderr and KEY not in refused.output
    installed.sandbox.call(r.fail_next, 1, 404, "Model 'llama3' not found.", "/v1/chat/completions")
    gone = run("chat", "llama3", input="hi\n")  # the model went away after the check
    assert gone.exit_code == 1
    assert "404 Not Found: Model 'llama3' not found." in gone.stderr
    assert f"The server serves: {', '.join(SERVED)}." in gone.stderr
    assert "Traceback" not in busy.output + refused.output + gone.output


def test_base_url_talks_to_the_router_directly(run: Run, installed: ClusterEnv) -> None:
    url = f"http://127.0.0.1:{router_port(installed)}/v1"
    result = run("chat", "meta-llama/Llama-3.1-8B-Instruct", "--base-url", url, "-o", "json", input="a\nb\n")
    assert result.exit_code == 0, result.stderr
    a, b = records(result.stdout)
    assert (a["text"], b["text"]) == (answer("a"), answer("b"))
    assert b["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_the_request_omits_max_tokens_unless_given() -> None:
    messages = Conversation("m", "sys").messages("hi")
    body = CompletionRequest(model="m", prompt="", messages=messages, max_tokens=None).body()
    assert "max_tokens" not in body
    assert body["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert CompletionRequest(model="m", prompt="p").body()["max_tokens"] == 64  # the default stays


def test_the_history_path_and_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path.home()
    assert history_path({}) == home / ".local/state/vllmctl/chat-history"
    assert history_path({"XDG_STATE_HOME": "relative"}) == home / ".local/state/vllmctl/chat-history"
    assert history_path({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "vllmctl/chat-history"
    loose = tmp_path / "vllmctl" / "chat-history"
    loose.parent.mkdir()
    loose.write_text("+old\n")
    loose.chmod(0o644)
    prepare_history_file(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600 and loose.read_text() == "+old\n"
    assert parse_line("//x") == "/x" and parse_line("plain") == "plain"


# --- at a terminal ----------------------------------------------------------------------------


def spawn(cluster: ClusterEnv, cwd: Path, state: Path, *args: str) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}
    env.update(
        cluster.env,
        VLLM_NAMESPACE=cluster.namespace,
        VLLM_API_KEY=KEY,  # sent with every request (the stand-in has no key, so takes any)
        XDG_STATE_HOME=str(state),
        TERM="xterm",
        NO_COLOR="1",
        COLUMNS="120",
    )
    return pexpect.spawn(
        sys.executable, ["-m", "vllmctl", "chat", *args], cwd=str(cwd), env=env, encoding="utf-8", timeout=30
    )


def footer_of(child: pexpect.spawn) -> str:
    child.expect(r"\[(time to first token|stopped)[^\]]*\]")
    return str(child.after)


def say(child: pexpect.spawn, text: str) -> None:
    child.expect_exact(">")
    child.send(text + "\r")


def test_two_turns_reset_save_model_and_history_at_a_terminal(
    installed: ClusterEnv, isolated: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    child = spawn(installed, isolated, state, "llama3")
    child.logfile_read = transcript = _Transcript()
    child.expect_exact("Chatting with llama3 at the router.")
    say(child, "hello one")
    child.expect_exact(answer("hello one"))
    first = footer_of(child)
    assert f"tokens {tokens('hello one')} prompt, {tokens(answer('hello one'))} completion" in first
    assert "time to first token" in first and "tokens/s" in first
    say(child, "second turn")
    child.expect_exact(answer("second turn"))  # the second message echoed...
    carried = tokens("hello one") + tokens(answer("hello one")) + tokens("second turn")
    assert f"tokens {carried} prompt" in footer_of(child)  # ...with both turns sent
    say(child, "/reset")
    child.expect_exact("Conversation reset (2 turns forgotten).")
    say(child, "third")
    child.expect_exact(answer("third"))
    assert "tokens 1 prompt" in footer_of(child)  # only the new message
    # Multi-line input: a trailing backslash, then Esc Enter, each start another line.
    child.expect_exact(">")
    child.send("line a\\\r")
    child.send("line b\x1b\r")
    child.send("line c\r")
    footer_of(child)
    say(child, "/model meta-llama/Llama-3.1-8B-Instruct")
    child.expect_exact("Now talking to meta-llama/Llama-3.1-8B-Instruct.")
    say(child, "/model qwen")  # not served: said, and the chat goes on
    child.expect_exact(f"error: qwen is not served by the router; it serves {', '.join(SERVED)}")
    installed.sandbox.call(router(installed).fail_next, 1, 503, "engine overloaded", "/v1/chat/completions")
    say(child, "doomed")  # a server error is said, and the turn is not part of the conversation
    child.expect_exact("503 Service Unavailable: engine overloaded")
    child.expect_exact("`vllmctl status`")
    say(child, "/save conv.json")
    child.expect_exact("Saved 4 messages to conv.json.")
    child.expect_exact(">")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, transcript.text
    saved = json.loads((isolated / "conv.json").read_text())
    assert saved["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert [m["content"] for m in saved["messages"]] == [
        "third",
        answer("third"),
        "line a\nline b\nline c",
        answer("line a\nline b\nline c"),
    ]
    history = history_path({"XDG_STATE_HOME": str(state)})
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    kept = [line[1:] for line in history.read_text().splitlines() if line.startswith("+")]
    assert kept == [
        "hello one",
        "second turn",
        "/reset",
        "third",
        "line a",
        "line b",
        "line c",
        "/model meta-llama/Llama-3.1-8B-Instruct",
        "/model qwen",
        "doomed",
        "/save conv.json",
    ]
    for where in (history.read_text(), transcript.text, (isolated / "conv.json").read_text()):
        assert KEY not in where
    assert "Traceback" not in transcript.text


def test_ctrl_c_stops_a_reply_not_the_chat(installed: ClusterEnv, isolated: Path, tmp_path: Path) -> None:
    pace(installed, 0.0, 5.0)
    child = spawn(installed, isolated, tmp_path / "state")  # no MODEL: chosen from models.yaml
    child.logfile_read = transcript = _Transcript()
    child.expect_exact("Which model?")
    child.send("\r")
    child.expect_exact("Chatting with llama3 at the router.")
    say(child, LONG)
    child.expect_exact("echo: word0 word1")  # the reply has begun, 200 tokens still to come
    assert running(installed) == 1
    child.sendintr()
    child.expect_exact("Stopped (the text so far stays in the conversation).")
    assert footer_of(child).startswith("[stopped, time to first token")
    # The HTTP stream was closed: the stand-in stops generating that answer.
    eventually(lambda: running(installed) == 0, timeout=10)
    pace(installed, 0.0, 0.0)
    say(child, "after")
    child.expect_exact(answer("after"))
    prompt_tokens = int(re.search(r"tokens (\d+) prompt", footer_of(child))[1])  # type: ignore[index]
    # The stopped reply's text is part of the conversation: more than the two messages alone.
    assert prompt_tokens > tokens(LONG) + tokens("after")
    child.expect_exact(">")
    child.sendintr()  # at an empty prompt: a hint, not an exit
    child.expect_exact("Ctrl-D or /exit leaves the chat.")
    child.expect_exact(">")
    child.send("typed, then cleared")
    child.sendintr()
    child.send("/save kept.json\r")  # the line was empty again: this is all it holds
    child.expect_exact("Saved 4 messages")
    say(child, "/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, transcript.text
    user, partial, after, _ = json.loads((isolated / "kept.json").read_text())["messages"]
    assert user == {"role": "user", "content": LONG} and after["content"] == "after"
    assert partial["role"] == "assistant" and partial["content"].startswith("echo: word0 word1")
    assert answer(LONG).startswith(partial["content"]) and partial["content"] != answer(LONG)
    assert prompt_tokens == tokens(LONG) + tokens(partial["content"]) + tokens("after")
    assert FILLER_TEXT not in partial["content"]
    assert "Traceback" not in transcript.text and "Interrupted" not in transcript.text


def test_ctrl_c_before_any_text_drops_the_turn(installed: ClusterEnv, isolated: Path, tmp_path: Path) -> None:
    pace(installed, 0.0, 5.0)
    child = spawn(installed, isolated, tmp_path / "state", "llama3", "--no-stream")
    child.logfile_read = transcript = _Transcript()
    say(child, LONG)
    eventually(lambda: running(installed) == 1, timeout=10)  # the whole reply comes at the end
    child.sendintr()
    child.expect_exact("Stopped (the turn is dropped).")
    # (The stand-in goes on generating a whole answer nobody reads: it notices a gone client
    # only when it writes, as aiohttp does; vLLM aborts such a request.)
    say(child, "/save none.json")
    child.expect_exact("Saved 0 messages")
    say(child, "/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, transcript.text
    assert json.loads((isolated / "none.json").read_text()) == {"model": "llama3", "messages": []}


class _Transcript:
    """What the terminal showed, for the assertions and for a failure's message."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, data: str) -> None:
        self.text += data

    def flush(self) -> None:
        pass
