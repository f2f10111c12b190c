"""vllmctl.secrets.vault against the sandbox's real OpenBao dev server, through hvac."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import trustme

from tests.sandbox.sandbox import Sandbox
from vllmctl.core.errors import EXIT_EXTERNAL, EXIT_USAGE, ExternalError, UsageError
from vllmctl.secrets.vault import SecretChangedError, VaultConfig, VaultStore, mount_problem, vault_config
from vllmctl.settings import Settings

SECRET = "hf_s3cr3tValueThatMustNeverBeShown1234"
OTHER = "hf_anotherValueThatMustNeverBeShown987"
RESTRICTED = "restricted-token-for-tests"  # bao refuses custom ids starting "hvs."


@pytest.fixture
def vault(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session sandbox with OpenBao reset before and after the test (no `cluster` needed):
    a fresh secret/ mount, the test's tokens, policies, mounts and namespaces gone."""
    sandbox.call(sandbox.vault.reset)
    yield sandbox
    sandbox.call(sandbox.vault.reset)


def settings(**env: str) -> Settings:
    return Settings.resolve({}, env)


def store_for(sb: Sandbox, home: Path, mount: str = "secret", **env: str) -> VaultStore:
    """A store on OpenBao as the root token, unless `env` says otherwise."""
    full = {"VAULT_ADDR": sb.vault_url, "VAULT_TOKEN": sb.vault.root_token, **env}
    return VaultStore(vault_config(settings(**{k: v for k, v in full.items() if v}), home=home), mount)


def message_of(excinfo: pytest.ExceptionInfo[Exception], *hidden: str) -> str:
    """The error's message, after checking it is one line and holds none of `hidden`."""
    message = str(excinfo.value)
    assert "\n" not in message
    assert "Traceback" not in message
    for secret in hidden:
        assert secret not in message
    return message


# -- configuration ---------------------------------------------------------------------------


def test_config_from_the_environment(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("PEM")
    (tmp_path / "cas").mkdir()
    config = vault_config(
        settings(
            VAULT_ADDR="https://vault.example.com:8200/",
            VAULT_TOKEN=" hvs.from-env\n",
            VAULT_NAMESPACE="team-a/",
            VAULT_CACERT=str(ca),
            VAULT_CAPATH=str(tmp_path / "cas"),
            VAULT_SKIP_VERIFY="false",
        ),
        home=tmp_path,
    )
    assert config == VaultConfig(
        addr="https://vault.example.com:8200",
        token="hvs.from-env",
        namespace="team-a",
        cacert=ca,
        capath=tmp_path / "cas",
        skip_verify=False,
        token_source="VAULT_TOKEN",
    )
    assert "hvs.from-env" not in repr(config)


def test_token_from_the_vault_token_file(tmp_path: Path) -> None:
    (tmp_path / ".vault-token").write_text("hvs.from-file\n")
    config = vault_config(settings(VAULT_ADDR="http://127.0.0.1:8200"), home=tmp_path)
    assert (config.token, config.token_source) == ("hvs.from-file", "~/.vault-token")
    assert (config.namespace, config.cacert, config.capath, config.skip_verify) == (None, None, None, False)
    # VAULT_TOKEN wins over the file, as in the vault CLI.
    config = vault_config(settings(VAULT_ADDR="http://127.0.0.1:8200", VAULT_TOKEN="hvs.env"), home=tmp_path)
    assert (config.token, config.token_source) == ("hvs.env", "VAULT_TOKEN")


def test_token_file_defaults_to_the_home_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".vault-token").write_text("hvs.in-home")
    assert vault_config(settings(VAULT_ADDR="http://127.0.0.1:8200")).token == "hvs.in-home"


def test_missing_address_names_vault_addr(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as excinfo:
        vault_config(settings(VAULT_TOKEN="hvs.x"), home=tmp_path)
    assert excinfo.value.exit_code == EXIT_USAGE
    assert message_of(excinfo, "hvs.x") == (
        "VAULT_ADDR is not set: set it to Vault's address, e.g. "
        "`export VAULT_ADDR=https://vault.example.com:8200`."
    )


@pytest.mark.parametrize("addr", ["vault.example.com:8200", "ftp://vault", "https://", "http://h:port"])
def test_an_address_that_is_not_http_is_refused(tmp_path: Path, addr: str) -> None:
    with pytest.raises(UsageError, match="is not an http\\(s\\) address") as excinfo:
        vault_config(settings(VAULT_ADDR=addr, VAULT_TOKEN="hvs.x"), home=tmp_path)
    assert addr in message_of(excinfo)


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_missing_token_says_how_to_log_in(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / ".vault-token").write_text(content)
    with pytest.raises(UsageError) as excinfo:
        vault_config(settings(VAULT_ADDR="http://127.0.0.1:8200", VAULT_TOKEN=""), home=tmp_path)
    assert message_of(excinfo) == (
        "no Vault token: VAULT_TOKEN is not set and ~/.vault-token is missing or empty; "
        "run `vault login` or set VAULT_TOKEN."
    )


def test_a_token_with_spaces_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="from VAULT_TOKEN holds spaces") as excinfo:
        vault_config(settings(VAULT_ADDR="http://127.0.0.1:8200", VAULT_TOKEN="hvs.a b"), home=tmp_path)
    message_of(excinfo, "hvs.a b", "hvs.a")


def test_ca_settings_must_exist(tmp_path: Path) -> None:
    base = {"VAULT_ADDR": "https://127.0.0.1:8200", "VAULT_TOKEN": "hvs.x"}
    with pytest.raises(UsageError, match=r"^VAULT_CACERT=.*missing\.pem is not a file"):
        vault_config(settings(**base, VAULT_CACERT=str(tmp_path / "missing.pem")), home=tmp_path)
    with pytest.raises(UsageError, match=r"^VAULT_CAPATH=.*nowhere is not a directory"):
        vault_config(settings(**base, VAULT_CAPATH=str(tmp_path / "nowhere")), home=tmp_path)
    # Skipping verification makes them moot, as in the vault CLI.
    config = vault_config(
        settings(**base, VAULT_CACERT=str(tmp_path / "missing.pem"), VAULT_SKIP_VERIFY="1"), home=tmp_path
    )
    assert config.skip_verify


def test_skip_verify_and_plain_http_are_warned_about(tmp_path: Path) -> None:
    base = {"VAULT_TOKEN": "hvs.x"}
    quiet = VaultStore(vault_config(settings(**base, VAULT_ADDR="https://vault:8200"), home=tmp_path))
    assert quiet.warnings == []
    local = VaultStore(vault_config(settings(**base, VAULT_ADDR="http://127.0.0.1:8200"), home=tmp_path))
    assert local.warnings == []
    skipping = VaultStore(
        vault_config(
            settings(**base, VAULT_ADDR="https://vault:8200", VAULT_SKIP_VERIFY="true"), home=tmp_path
        )
    )
    assert skipping.warnings == [
        "VAULT_SKIP_VERIFY is set: TLS verification is off for Vault at https://vault:8200, "
        "so anyone in between could read the token and the secrets."
    ]
    plain = VaultStore(vault_config(settings(**base, VAULT_ADDR="http://vault:8200"), home=tmp_path))
    assert plain.warnings == [
        "VAULT_ADDR=http://vault:8200 is plain http: the token and the secrets cross the network "
        "unencrypted; use Vault's https address."
    ]


def test_importing_the_module_does_not_load_hvac() -> None:
    code = "import sys, vllmctl.secrets.vault; print(sorted({'hvac', 'requests'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- talking to OpenBao -----------------------------------------------------------------------


def test_check_passes_on_a_healthy_vault(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path)
    store.check()
    assert store.warnings == []


def test_write_then_read(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path)
    assert store.read("vllm/huggingface") is None
    assert store.write("vllm/huggingface", {"token": SECRET}, cas=0) == 1
    assert store.read("vllm/huggingface") == ({"token": SECRET}, 1)
    assert store.write("/vllm/huggingface/", {"token": OTHER}, cas=1) == 2
    assert store.read("vllm/huggingface") == ({"token": OTHER}, 2)
    assert store.write("vllm/huggingface", {"token": SECRET}, cas=None) == 3
    # What any other Vault client sees.
    assert vault.call(vault.vault.read_secret, "secret", "vllm/huggingface", vault.vault.root_token) == {
        "token": SECRET
    }


def test_create_only_write_loses_to_an_existing_secret(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path)
    vault.call(vault.vault.write_secret, "secret", "vllm/api-key", {"api-key": OTHER})
    with pytest.raises(SecretChangedError) as excinfo:
        store.write("vllm/api-key", {"api-key": SECRET}, cas=0)
    assert isinstance(excinfo.value, ExternalError)
    assert excinfo.value.exit_code == EXIT_EXTERNAL
    assert excinfo.value.version == 1
    assert message_of(excinfo, SECRET, OTHER, vault.vault.root_token) == (
        "the secret at secret/vllm/api-key changed since it was read (version 1 now): "
        "re-run to overwrite the new version."
    )
    assert store.read("vllm/api-key") == ({"api-key": OTHER}, 1)


def test_write_loses_to_a_newer_version(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path)
    store.write("vllm/api-key", {"api-key": SECRET}, cas=0)
    seen = store.read("vllm/api-key")
    assert seen is not None
    vault.call(vault.vault.write_secret, "secret", "vllm/api-key", {"api-key": OTHER})  # someone else
    with pytest.raises(SecretChangedError) as excinfo:
        store.write("vllm/api-key", {"api-key": SECRET}, cas=seen[1])
    assert message_of(excinfo, SECRET, OTHER, vault.vault.root_token) == (
        "the secret at secret/vllm/api-key changed since it was read (version 2 now): "
        "re-run to overwrite the new version."
    )
    # Re-running reads version 2 and wins.
    assert store.write("vllm/api-key", {"api-key": SECRET}, cas=2) == 3


def test_soft_delete_is_recoverable(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path)
    store.write("vllm/api-key", {"api-key": SECRET}, cas=0)
    assert store.delete("vllm/api-key") is True
    assert store.read("vllm/api-key") is None
    assert store.delete("vllm/api-key") is False  # nothing left to delete
    # `vault kv undelete` brings it back: the version was only marked deleted.
    client = hvac.Client(url=vault.vault_url, token=vault.vault.root_token, timeout=5)
    client.secrets.kv.v2.undelete_secret_versions(path="vllm/api-key", versions=[1])
    assert store.read("vllm/api-key") == ({"api-key": SECRET}, 1)


def test_create_only_write_after_a_delete(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path)
    store.write("vllm/api-key", {"api-key": OTHER}, cas=0)
    store.delete("vllm/api-key")
    # read() says absent, so cas=0 must work although Vault keeps the key's metadata.
    assert store.write("vllm/api-key", {"api-key": SECRET}, cas=0) == 2
    assert store.read("vllm/api-key") == ({"api-key": SECRET}, 2)


def test_destroy_removes_every_version(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path)
    store.write("vllm/api-key", {"api-key": OTHER}, cas=0)
    store.write("vllm/api-key", {"api-key": SECRET}, cas=1)
    store.delete("vllm/api-key")  # a soft-deleted latest version is destroyed too
    assert store.delete("vllm/api-key", destroy=True) is True
    client = hvac.Client(url=vault.vault_url, token=vault.vault.root_token, timeout=5)
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_metadata(path="vllm/api-key")
    old = partial(vault.vault.read_secret, "secret", "vllm/api-key", vault.vault.root_token, version=1)
    assert vault.call(old) is None
    assert store.delete("vllm/api-key", destroy=True) is False
    assert store.read("vllm/api-key") is None
    assert store.write("vllm/api-key", {"api-key": SECRET}, cas=0) == 1


def test_namespace_is_sent(vault: Sandbox, tmp_path: Path) -> None:
    # OpenBao serves namespaces (since 2.3): each has its own mounts.
    vault.vault.create_namespace("team-a")
    vault.vault.enable_kv("secret", namespace="team-a")
    team = store_for(vault, tmp_path, VAULT_NAMESPACE="team-a")
    team.check()
    team.write("vllm/api-key", {"api-key": SECRET}, cas=0)
    in_team = partial(
        vault.vault.read_secret, "secret", "vllm/api-key", vault.vault.root_token, namespace="team-a"
    )
    assert vault.call(in_team) == {"api-key": SECRET}
    assert store_for(vault, tmp_path).read("vllm/api-key") is None  # not in the root namespace


def check_and_read_fail_with(store: VaultStore, expected: str, token: str) -> None:
    """check() and read() both refuse with `expected`, which never holds the token."""
    with pytest.raises(ExternalError) as excinfo:
        store.check()
    assert message_of(excinfo, token) == expected
    with pytest.raises(ExternalError) as excinfo:
        store.read("vllm/api-key")
    assert message_of(excinfo, token) == expected


def test_a_namespace_that_does_not_exist_is_named(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path, VAULT_NAMESPACE="team-nope")
    expected = (
        f"Vault at {vault.vault_url} has no namespace team-nope (VAULT_NAMESPACE): set VAULT_NAMESPACE "
        "to the namespace that holds the secrets, or unset it for the root namespace."
    )
    check_and_read_fail_with(store, expected, vault.vault.root_token)


# -- failures ---------------------------------------------------------------------------------


def test_sealed(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path)
    vault.call(setattr, vault.vault, "sealed", True)
    try:
        expected = f"Vault at {vault.vault_url} is sealed: unseal it (`vault operator unseal`) and retry."
        with pytest.raises(ExternalError) as excinfo:
            store.check()
        assert message_of(excinfo, vault.vault.root_token) == expected
        with pytest.raises(ExternalError) as excinfo:
            store.write("vllm/api-key", {"api-key": SECRET}, cas=0)
        assert message_of(excinfo, vault.vault.root_token, SECRET) == expected
    finally:
        vault.call(setattr, vault.vault, "sealed", False)


def test_forbidden_path_names_it_and_the_missing_capability(vault: Sandbox, tmp_path: Path) -> None:
    vault.call(vault.vault.add_token, RESTRICTED, ["secret/data/other/"])
    store = store_for(vault, tmp_path, VAULT_TOKEN=RESTRICTED)
    store.check()  # a valid token; mount details it may not see are left to reads and writes
    assert store.read("other/thing") is None
    expected = (
        "Vault refused to {} secret/data/vllm/api-key: the policy of the token from VAULT_TOKEN grants "
        "nothing there, not {}; set VAULT_TOKEN to a token whose policy allows {} on "
        "secret/data/vllm/api-key, or run `vault login` as someone it allows."
    )
    with pytest.raises(ExternalError) as excinfo:
        store.read("vllm/api-key")
    assert message_of(excinfo, RESTRICTED) == expected.format("read", "read", "read")
    with pytest.raises(ExternalError) as excinfo:
        store.write("vllm/api-key", {"api-key": SECRET}, cas=0)
    assert message_of(excinfo, RESTRICTED, SECRET) == expected.format(
        "write", "create or update", "create and update"
    )


def test_a_read_only_token_reads_but_may_not_write(vault: Sandbox, tmp_path: Path) -> None:
    vault.vault.write_secret("secret", "vllm/api-key", {"api-key": OTHER})
    reader = vault.vault.add_token(allowed_paths=["secret/data/vllm/"], capabilities=("read",))
    store = store_for(vault, tmp_path, VAULT_TOKEN=reader)
    store.check()
    assert store.read("vllm/api-key") == ({"api-key": OTHER}, 1)
    with pytest.raises(ExternalError) as excinfo:
        store.write("vllm/api-key", {"api-key": SECRET}, cas=1)
    assert message_of(excinfo, reader, SECRET, OTHER) == (
        "Vault refused to write secret/data/vllm/api-key: the policy of the token from VAULT_TOKEN grants "
        "read there, not create or update; set VAULT_TOKEN to a token whose policy allows create and "
        "update on secret/data/vllm/api-key, or run `vault login` as someone it allows."
    )
    with pytest.raises(ExternalError, match="grants read there, not delete;"):
        store.delete("vllm/api-key")
    assert vault.vault.read_secret("secret", "vllm/api-key") == {"api-key": OTHER}  # nothing changed


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_a_token_vault_no_longer_accepts(vault: Sandbox, tmp_path: Path, how: str) -> None:
    if how == "revoked":
        token = vault.vault.add_token(allowed_paths=["secret/"])
        vault.vault.revoke(token)
    else:
        token = vault.vault.add_token(allowed_paths=["secret/"], ttl="1s")
        time.sleep(1.5)
    store = store_for(vault, tmp_path, VAULT_TOKEN=token)
    with pytest.raises(ExternalError) as excinfo:
        store.check()
    assert message_of(excinfo, token) == (
        f"Vault at {vault.vault_url} did not accept the token from VAULT_TOKEN (expired, revoked or "
        "mistyped): run `vault login`, or set VAULT_TOKEN to a valid token."
    )
    # Without the check first: Vault will not say what the token may do, so it is the suspect.
    with pytest.raises(ExternalError) as excinfo:
        store.read("vllm/api-key")
    assert message_of(excinfo, token) == (
        "Vault refused to read secret/data/vllm/api-key with the token from VAULT_TOKEN (expired, or not "
        "allowed on that path): run `vault login`, or set VAULT_TOKEN to a token whose policy allows "
        "secret/data/vllm/api-key."
    )


def test_forbidden_names_the_token_file(vault: Sandbox, tmp_path: Path) -> None:
    vault.call(vault.vault.add_token, RESTRICTED, ["secret/data/other/"])
    (tmp_path / ".vault-token").write_text(RESTRICTED + "\n")
    store = store_for(vault, tmp_path, VAULT_TOKEN="")
    with pytest.raises(ExternalError) as excinfo:
        store.delete("vllm/api-key")
    message = message_of(excinfo, RESTRICTED)
    assert "the token from ~/.vault-token" in message
    assert "secret/data/vllm/api-key" in message
    assert "`vault login`" in message


def test_unknown_token_fails_the_check(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path, VAULT_TOKEN="hvs.revoked-long-ago")
    with pytest.raises(ExternalError) as excinfo:
        store.check()
    assert message_of(excinfo, "hvs.revoked-long-ago") == (
        f"Vault at {vault.vault_url} did not accept the token from VAULT_TOKEN (expired, revoked or "
        "mistyped): run `vault login`, or set VAULT_TOKEN to a valid token."
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_fails_fast_naming_the_address(tmp_path: Path) -> None:
    addr = f"http://127.0.0.1:{closed_port()}"
    store = VaultStore(vault_config(settings(VAULT_ADDR=addr, VAULT_TOKEN="hvs.some-token"), home=tmp_path))
    started = time.monotonic()
    with pytest.raises(ExternalError) as excinfo:
        store.check()
    assert time.monotonic() - started < 2
    assert excinfo.value.exit_code == EXIT_EXTERNAL
    assert message_of(excinfo, "hvs.some-token") == (
        f"cannot reach Vault at {addr} (VAULT_ADDR): connection refused; check that Vault is running "
        "there and that VAULT_ADDR is right."
    )
    with pytest.raises(ExternalError, match="connection refused"):
        store.read("vllm/api-key")


def test_a_silent_vault_times_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import vllmctl.secrets.vault as vault_module

    assert vault_module.TIMEOUT_SECONDS <= 10
    monkeypatch.setattr(vault_module, "TIMEOUT_SECONDS", 0.2)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        addr = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = VaultStore(
            vault_config(settings(VAULT_ADDR=addr, VAULT_TOKEN="hvs.some-token"), home=tmp_path)
        )
        started = time.monotonic()
        with pytest.raises(ExternalError) as excinfo:
            store.check()
        assert time.monotonic() - started < 2
    assert message_of(excinfo, "hvs.some-token") == (
        f"Vault at {addr} (VAULT_ADDR) did not answer within 0.2 seconds: check the address, the network "
        "and that Vault is running."
    )


def test_tls_with_vault_cacert(vault: Sandbox, tmp_path: Path) -> None:
    # OpenBao's second listener serves TLS with a certificate from the sandbox's throw-away CA.
    addr = vault.vault_tls_url
    store = store_for(vault, tmp_path, VAULT_ADDR=addr)
    with pytest.raises(ExternalError) as excinfo:
        store.check()
    message = message_of(excinfo, vault.vault.root_token)
    assert message.startswith(f"cannot reach Vault at {addr} (VAULT_ADDR): TLS verification failed (")
    assert "certificate verify failed" in message
    assert message.endswith("set VAULT_CACERT to the PEM file of the CA that signed Vault's certificate.")
    # With the CA the same server is trusted: check, write and read go through TLS.
    trusted = store_for(vault, tmp_path, VAULT_ADDR=addr, VAULT_CACERT=str(vault.dir / "ca.crt"))
    trusted.check()
    assert trusted.warnings == []
    assert trusted.write("vllm/api-key", {"api-key": SECRET}, cas=0) == 1
    assert vault.vault.read_secret("secret", "vllm/api-key") == {"api-key": SECRET}
    # A wrong CA is named with the setting that holds it.
    other = tmp_path / "other-ca.pem"
    other.write_bytes(trustme.CA().cert_pem.bytes())
    wrong = store_for(vault, tmp_path, VAULT_ADDR=addr, VAULT_CACERT=str(other))
    with pytest.raises(ExternalError, match=f"check that VAULT_CACERT \\({other}\\) holds the CA"):
        wrong.check()
    # Without verification it works too, with the warning vllmctl prints.
    skipping = store_for(vault, tmp_path, VAULT_ADDR=addr, VAULT_SKIP_VERIFY="true")
    assert skipping.read("vllm/api-key") == ({"api-key": SECRET}, 1)
    assert skipping.warnings[0].startswith("VAULT_SKIP_VERIFY is set")


def test_a_tls_server_that_is_not_vault_is_named(vault: Sandbox, tmp_path: Path) -> None:
    # The sandbox's Kubernetes API speaks TLS with the same CA: not Vault, but a TLS server.
    not_vault = f"{vault.kube_url} answered Vault's health check with HTTP"
    store = store_for(vault, tmp_path, VAULT_ADDR=vault.kube_url, VAULT_CACERT=str(vault.dir / "ca.crt"))
    with pytest.raises(ExternalError, match=not_vault):
        store.check()


def test_missing_mount_names_it_and_the_setting(vault: Sandbox, tmp_path: Path) -> None:
    store = store_for(vault, tmp_path, mount="kv-nope")
    expected = (
        f"Vault at {vault.vault_url} has no secrets engine mounted at kv-nope/: set VLLM_VAULT_MOUNT to "
        "the KV version 2 mount that holds the secrets, or create this one "
        "(`vault secrets enable -path=kv-nope kv-v2`)."
    )
    check_and_read_fail_with(store, expected, vault.vault.root_token)
    # Another KV v2 mount works once it exists.
    vault.vault.enable_kv("kv-nope")
    store.check()
    assert store.write("vllm/api-key", {"api-key": SECRET}, cas=0) == 1


def test_a_kv_version_1_mount_fails_the_check(vault: Sandbox, tmp_path: Path) -> None:
    vault.vault.enable_kv("kv1", version=1)
    with pytest.raises(ExternalError) as excinfo:
        store_for(vault, tmp_path, mount="kv1").check()
    assert message_of(excinfo, vault.vault.root_token) == (
        "the Vault mount kv1/ is not KV version 2 (options.version is 1): set VLLM_VAULT_MOUNT to the "
        "KV version 2 mount that holds the secrets, or upgrade this one with "
        "`vault kv enable-versioning kv1/`."
    )


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"type": "kv", "options": {"version": "2"}}, None),
        ({"options": {"version": "2"}}, None),  # a tune read has no type
        (
            {"type": "kv", "options": {"version": "1"}},
            "the Vault mount secret/ is not KV version 2 (options.version is 1): set VLLM_VAULT_MOUNT to "
            "the KV version 2 mount that holds the secrets, or upgrade this one with "
            "`vault kv enable-versioning secret/`.",
        ),
        (
            {"type": "kv", "options": None},
            "the Vault mount secret/ is not KV version 2 (options.version is 1): set VLLM_VAULT_MOUNT to "
            "the KV version 2 mount that holds the secrets, or upgrade this one with "
            "`vault kv enable-versioning secret/`.",
        ),
        (
            {"type": "transit", "options": None},
            "the Vault mount secret/ is a transit secrets engine, not KV version 2: set VLLM_VAULT_MOUNT "
            "to the KV version 2 mount that holds the secrets.",
        ),
    ],
)
def test_mount_kinds(info: dict[str, object], expected: str | None) -> None:
    assert mount_problem("secret", info) == expected
