"""The Vault stand-in driven by the real `hvac` client over HTTP, plus its Python-side accessor."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests

from tests.sandbox.loop import LoopThread
from tests.sandbox.vault import ACL_DENIED, VAULT_VERSION, VaultError, VaultStandIn

ROOT = "root-token-for-tests"
START = datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand, so every time in a response is known in advance."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1) -> str:
        """Move on and return the new time as Vault prints it."""
        self.now += timedelta(seconds=seconds)
        return self.text()

    def text(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".") + "Z"


@dataclass
class Server:
    loop: LoopThread
    vault: VaultStandIn
    clock: Clock
    url: str

    def client(self, token: str | None = ROOT, **kwargs: Any) -> hvac.Client:
        return hvac.Client(url=self.url, token=token, timeout=5, **kwargs)

    def raw(self, method: str, path: str, token: str | None = ROOT, **kwargs: Any) -> requests.Response:
        headers = {"X-Vault-Token": token} if token else {}
        return requests.request(method, f"{self.url}/v1/{path}", headers=headers, timeout=5, **kwargs)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    loop = LoopThread()
    clock = Clock()
    vault = VaultStandIn(ROOT, clock=clock)
    try:
        yield Server(loop, vault, clock, f"http://127.0.0.1:{loop.serve(vault.app())}")
    finally:
        loop.stop()


@pytest.fixture
def vault(server: Server) -> Iterator[Server]:
    """The shared server, wiped back to a fresh dev Vault after each test."""
    server.clock.now = START
    yield server
    server.loop.call(server.vault.reset)


@pytest.fixture
def client(vault: Server) -> Iterator[hvac.Client]:
    c = vault.client()
    yield c
    c.adapter.close()


def kv(c: hvac.Client) -> Any:
    return c.secrets.kv.v2


def read(c: hvac.Client, path: str, version: int | None = None, **kwargs: Any) -> Any:
    # raise_on_deleted_version is explicit: hvac warns when it is left to its default.
    return kv(c).read_secret_version(path, version=version, raise_on_deleted_version=True, **kwargs)


# -- sys --------------------------------------------------------------------------------------


def test_health_unsealed(vault: Server, client: hvac.Client) -> None:
    health = client.sys.read_health_status(method="GET")
    assert health["initialized"] is True
    assert health["sealed"] is False
    assert health["standby"] is False
    assert health["version"] == VAULT_VERSION
    assert health["server_time_utc"] == int(START.timestamp())
    assert client.sys.read_health_status().status_code == 200  # hvac's default is HEAD
    # activecode picks the status of an active node, as load balancers use it.
    assert client.sys.read_health_status(method="GET", active_code=299).status_code == 299


def test_sealed(vault: Server, client: hvac.Client) -> None:
    client.secrets.kv.v2.create_or_update_secret("app/db", {"password": "pw"})
    vault.loop.call(setattr, vault.vault, "sealed", True)

    health = client.sys.read_health_status(method="GET")
    assert health.status_code == 503  # hvac does not raise for health, it returns the response
    assert health.json()["sealed"] is True
    assert health.json()["standby"] is True  # a sealed node is not the active one
    assert client.sys.read_health_status().status_code == 503
    assert client.sys.read_health_status(method="GET", sealed_code=200)["sealed"] is True
    assert client.sys.is_sealed() is True

    with pytest.raises(hvac.exceptions.VaultDown) as down:
        read(client, "app/db")
    assert down.value.errors == ["Vault is sealed"]
    with pytest.raises(hvac.exceptions.VaultDown):
        client.auth.token.lookup_self()  # sealed wins over the token check
    with pytest.raises(hvac.exceptions.VaultDown):
        vault.client("bad-token").sys.list_mounted_secrets_engines()
    with pytest.raises(VaultError) as err:
        vault.loop.call(vault.vault.read_secret, "secret", "app/db", ROOT)
    assert (err.value.status, err.value.message) == (503, "Vault is sealed")

    vault.loop.call(setattr, vault.vault, "sealed", False)
    assert read(client, "app/db")["data"]["data"] == {"password": "pw"}


def test_seal_status(client: hvac.Client) -> None:
    status = client.sys.read_seal_status()
    assert (status["type"], status["sealed"], status["t"], status["n"]) == ("shamir", False, 1, 1)
    assert status["version"] == VAULT_VERSION
    assert client.sys.is_sealed() is False


def test_mounts(vault: Server, client: hvac.Client) -> None:
    mounts = client.sys.list_mounted_secrets_engines()
    assert sorted(mounts["data"]) == ["secret/", "sys/"]
    assert mounts["secret/"] == mounts["data"]["secret/"]  # sys answers repeat data at the top
    assert mounts["data"]["secret/"]["type"] == "kv"
    assert client.sys.retrieve_mount_option("secret", "version") == "2"
    assert client.sys.read_mount_configuration("secret")["data"]["options"] == {"version": "2"}

    vault.loop.call(vault.vault.add_kv_mount, "team/kv")
    assert "team/kv/" in client.sys.list_mounted_secrets_engines()["data"]
    kv(client).create_or_update_secret("x", {"k": "v"}, mount_point="team/kv")
    assert read(client, "x", mount_point="team/kv")["data"]["data"] == {"k": "v"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(client, "x")  # a different mount is a different key space

    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        client.sys.read_mount_configuration("nowhere")
    assert err.value.errors == ['cannot fetch sysview for path "nowhere/"']
    with pytest.raises(hvac.exceptions.InvalidPath) as err:
        read(client, "x", mount_point="nowhere")
    assert err.value.errors == ['no handler for route "nowhere/data/x". route entry not found.']


# -- tokens -----------------------------------------------------------------------------------


def test_lookup_self(vault: Server, client: hvac.Client) -> None:
    me = client.auth.token.lookup_self()["data"]
    assert (me["id"], me["policies"], me["display_name"]) == (ROOT, ["root"], "root")
    assert client.is_authenticated() is True

    stranger = vault.client("not-a-token")
    with pytest.raises(hvac.exceptions.Forbidden) as err:
        stranger.auth.token.lookup_self()
    assert err.value.errors == ["permission denied"]
    assert stranger.is_authenticated() is False
    with pytest.raises(hvac.exceptions.Forbidden):
        vault.client(None).auth.token.lookup_self()

    # Authorization: Bearer is the other header Vault reads a token from.
    bearer = requests.get(
        f"{vault.url}/v1/auth/token/lookup-self", headers={"Authorization": f"Bearer {ROOT}"}, timeout=5
    )
    assert bearer.status_code == 200
    assert bearer.json()["data"]["id"] == ROOT

    vault.loop.call(vault.vault.remove_token, ROOT)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()


def test_restricted_token(vault: Server, client: hvac.Client) -> None:
    kv(client).create_or_update_secret("team-a/db", {"user": "a"})
    kv(client).create_or_update_secret("team-b/db", {"user": "b"})
    vault.loop.call(vault.vault.add_token, "team-a", ["secret/data/team-a/*", "secret/metadata/team-a/"])
    team_a = vault.client("team-a")

    assert read(team_a, "team-a/db")["data"]["data"] == {"user": "a"}
    assert kv(team_a).list_secrets("team-a")["data"]["keys"] == ["db"]
    assert team_a.auth.token.lookup_self()["data"]["policies"] == ["default"]
    with pytest.raises(hvac.exceptions.Forbidden) as err:
        read(team_a, "team-b/db")
    assert err.value.errors == [ACL_DENIED]
    with pytest.raises(hvac.exceptions.Forbidden):
        kv(team_a).create_or_update_secret("team-b/db", {"user": "mallory"})
    with pytest.raises(hvac.exceptions.Forbidden):
        kv(team_a).list_secrets("")
    with pytest.raises(hvac.exceptions.Forbidden):
        team_a.sys.list_mounted_secrets_engines()
    assert read(client, "team-b/db")["data"]["data"] == {"user": "b"}


# -- KV v2 data -------------------------------------------------------------------------------


def test_write_and_read_versions(vault: Server, client: hvac.Client) -> None:
    first = kv(client).create_or_update_secret("app/db", {"password": "one"})
    assert first["data"] == {
        "version": 1,
        "created_time": "2024-01-02T03:04:05.5Z",
        "deletion_time": "",
        "destroyed": False,
        "custom_metadata": None,
    }
    second_time = vault.clock.tick()
    assert kv(client).create_or_update_secret("app/db", {"password": "two"})["data"]["version"] == 2

    latest = read(client, "app/db")["data"]
    assert latest["data"] == {"password": "two"}
    assert latest["metadata"]["version"] == 2
    assert latest["metadata"]["created_time"] == second_time
    old = read(client, "app/db", version=1)["data"]
    assert (old["data"], old["metadata"]["version"]) == ({"password": "one"}, 1)

    with pytest.raises(hvac.exceptions.InvalidPath) as err:
        read(client, "app/db", version=3)
    assert err.value.json == {"errors": []}
    with pytest.raises(hvac.exceptions.InvalidPath) as err:
        read(client, "app/nothing")
    assert err.value.json == {"errors": []}


def test_error_bodies_are_vault_json(vault: Server) -> None:
    missing = vault.raw("GET", "secret/data/nothing")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/json"  # no charset, or hvac ignores it
    assert missing.content == b'{"errors":[]}'

    no_data = vault.raw("POST", "secret/data/x", json={"options": {}})
    assert (no_data.status_code, no_data.json()) == (400, {"errors": ["no data provided"]})
    bad_json = vault.raw("POST", "secret/data/x", data=b"{not json")
    assert bad_json.status_code == 400
    no_versions = vault.raw("POST", "secret/destroy/x", json={"versions": []})
    assert no_versions.json() == {"errors": ["no version number provided"]}
    no_versions = vault.raw("POST", "secret/delete/x", json={})
    assert no_versions.json() == {"errors": ["No version number provided"]}
    assert vault.raw("GET", "secret/bogus/x").json() == {"errors": ["unsupported path"]}
    assert vault.raw("DELETE", "secret/destroy/x").status_code == 405
    assert vault.raw("GET", "secret/data/x", token=None).json() == {"errors": ["permission denied"]}


# hvac's patch() reads without raise_on_deleted_version, and hvac warns about that itself.
@pytest.mark.filterwarnings("ignore:The raise_on_deleted_version parameter:DeprecationWarning")
def test_check_and_set(vault: Server, client: hvac.Client) -> None:
    assert kv(client).create_or_update_secret("cas", {"v": "1"}, cas=0)["data"]["version"] == 1
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        kv(client).create_or_update_secret("cas", {"v": "again"}, cas=0)
    assert err.value.errors == ["check-and-set parameter did not match the current version"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        kv(client).create_or_update_secret("cas", {"v": "stale"}, cas=5)
    assert kv(client).create_or_update_secret("cas", {"v": "2"}, cas=1)["data"]["version"] == 2

    kv(client).update_metadata("cas", cas_required=True)
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        kv(client).create_or_update_secret("cas", {"v": "no cas"})
    assert err.value.errors == ["check-and-set parameter required for this call"]
    # hvac's patch is a read followed by a CAS write of the merged data.
    kv(client).patch("cas", {"extra": "x"})
    assert read(client, "cas")["data"]["data"] == {"v": "2", "extra": "x"}


def test_mount_config(vault: Server, client: hvac.Client) -> None:
    kv(client).configure(max_versions=2, cas_required=True)
    config = kv(client).read_configuration()["data"]
    assert (config["max_versions"], config["cas_required"]) == (2, True)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        kv(client).create_or_update_secret("k", {"v": "1"})
    for version in range(3):
        kv(client).create_or_update_secret("k", {"v": str(version)}, cas=version)
    assert sorted(kv(client).read_secret_metadata("k")["data"]["versions"]) == ["2", "3"]


def test_soft_delete_and_undelete(vault: Server, client: hvac.Client) -> None:
    kv(client).create_or_update_secret("app/db", {"password": "one"})
    kv(client).create_or_update_secret("app/db", {"password": "two"})
    deleted_at = vault.clock.tick(60)
    kv(client).delete_latest_version_of_secret("app/db")

    with pytest.raises(hvac.exceptions.InvalidPath) as err:
        read(client, "app/db")
    body = err.value.json["data"]
    assert body["data"] is None
    assert body["metadata"]["version"] == 2
    assert body["metadata"]["deletion_time"] == deleted_at
    # With raise_on_deleted_version=False hvac returns that 404 body instead of raising.
    gone = kv(client).read_secret_version("app/db", raise_on_deleted_version=False)
    assert gone["data"]["metadata"]["deletion_time"] == deleted_at
    assert read(client, "app/db", version=1)["data"]["data"] == {"password": "one"}
    assert vault.loop.call(vault.vault.read_secret, "secret", "app/db", ROOT) is None

    vault.clock.tick()
    kv(client).delete_latest_version_of_secret("app/db")  # already deleted: unchanged
    kv(client).delete_secret_versions("app/db", [2])
    assert kv(client).read_secret_metadata("app/db")["data"]["versions"]["2"]["deletion_time"] == deleted_at

    kv(client).undelete_secret_versions("app/db", [2])
    assert read(client, "app/db")["data"]["data"] == {"password": "two"}
    kv(client).delete_secret_versions("app/db", [1])
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(client, "app/db", version=1)
    assert read(client, "app/db")["data"]["data"] == {"password": "two"}


def test_destroy(vault: Server, client: hvac.Client) -> None:
    kv(client).create_or_update_secret("app/db", {"password": "one"})
    kv(client).create_or_update_secret("app/db", {"password": "two"})
    kv(client).destroy_secret_versions("app/db", [1])

    with pytest.raises(hvac.exceptions.InvalidPath) as err:
        read(client, "app/db", version=1)
    assert err.value.json["data"]["data"] is None
    assert err.value.json["data"]["metadata"]["destroyed"] is True
    kv(client).undelete_secret_versions("app/db", [1])  # destroyed data does not come back
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(client, "app/db", version=1)
    assert read(client, "app/db")["data"]["data"] == {"password": "two"}
    assert kv(client).read_secret_metadata("app/db")["data"]["versions"]["1"]["destroyed"] is True


# -- KV v2 metadata ---------------------------------------------------------------------------


def test_metadata_and_max_versions(vault: Server, client: hvac.Client) -> None:
    kv(client).create_or_update_secret("app/db", {"v": "1"})
    updated = vault.clock.tick(10)
    kv(client).create_or_update_secret("app/db", {"v": "2"})

    meta = kv(client).read_secret_metadata("app/db")["data"]
    assert meta == {
        "versions": {
            "1": {"created_time": "2024-01-02T03:04:05.5Z", "deletion_time": "", "destroyed": False},
            "2": {"created_time": updated, "deletion_time": "", "destroyed": False},
        },
        "current_version": 2,
        "oldest_version": 0,  # Vault leaves it at 0 until a version is dropped
        "created_time": "2024-01-02T03:04:05.5Z",
        "updated_time": updated,
        "max_versions": 0,
        "cas_required": False,
        "delete_version_after": "0s",
        "custom_metadata": None,
    }

    kv(client).update_metadata("app/db", max_versions=2, custom_metadata={"owner": "ml"})
    kv(client).create_or_update_secret("app/db", {"v": "3"})
    meta = kv(client).read_secret_metadata("app/db")["data"]
    assert (meta["current_version"], meta["oldest_version"], meta["max_versions"]) == (3, 2, 2)
    assert sorted(meta["versions"]) == ["2", "3"]
    assert meta["custom_metadata"] == {"owner": "ml"}
    assert read(client, "app/db")["data"]["metadata"]["custom_metadata"] == {"owner": "ml"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(client, "app/db", version=1)  # dropped for good

    with pytest.raises(hvac.exceptions.InvalidPath) as err:
        kv(client).read_secret_metadata("app/none")
    assert err.value.json == {"errors": []}


def test_delete_metadata_and_all_versions(vault: Server, client: hvac.Client) -> None:
    kv(client).create_or_update_secret("app/db", {"v": "1"})
    kv(client).create_or_update_secret("app/other", {"v": "1"})
    kv(client).delete_metadata_and_all_versions("app/db")
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(client, "app/db")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv(client).read_secret_metadata("app/db")
    assert kv(client).list_secrets("app")["data"]["keys"] == ["other"]
    # Writing again starts over at version 1.
    assert kv(client).create_or_update_secret("app/db", {"v": "new"})["data"]["version"] == 1


def test_list_secrets(vault: Server, client: hvac.Client) -> None:
    for path in ("app/a", "app/b/c", "app/b/d", "top", "top/under"):
        kv(client).create_or_update_secret(path, {"k": "v"})
    assert kv(client).list_secrets("")["data"]["keys"] == ["app/", "top", "top/"]
    assert kv(client).list_secrets("app")["data"]["keys"] == ["a", "b/"]
    assert kv(client).list_secrets("app/b/")["data"]["keys"] == ["c", "d"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv(client).list_secrets("nothing-here")

    # hvac sends the LIST method; with strict_http it sends GET ?list=true, like the Go client.
    strict = vault.client(strict_http=True)
    assert kv(strict).list_secrets("app")["data"]["keys"] == ["a", "b/"]
    assert vault.raw("LIST", "secret/metadata/app").json()["data"]["keys"] == ["a", "b/"]
    assert vault.raw("GET", "secret/metadata/app", params={"list": "true"}).json()["data"]["keys"] == [
        "a",
        "b/",
    ]


def test_namespaces_are_separate_key_spaces(vault: Server, client: hvac.Client) -> None:
    team = vault.client(namespace="team")
    kv(team).create_or_update_secret("app/db", {"where": "team"})
    with pytest.raises(hvac.exceptions.InvalidPath):
        read(client, "app/db")
    assert read(team, "app/db")["data"]["data"] == {"where": "team"}
    found = vault.loop.call(lambda: vault.vault.read_secret("secret", "app/db", ROOT, namespace="team"))
    assert found == {"where": "team"}


# -- the Python-side accessor -----------------------------------------------------------------


def test_read_secret_accessor(vault: Server, client: hvac.Client) -> None:
    call = vault.loop.call
    kv(client).create_or_update_secret("app/db", {"password": "one"})
    kv(client).create_or_update_secret("app/db", {"password": "two"})

    assert call(vault.vault.read_secret, "secret", "app/db", ROOT) == {"password": "two"}
    assert call(lambda: vault.vault.read_secret("secret", "app/db", ROOT, version=1)) == {"password": "one"}
    assert call(vault.vault.read_secret, "secret", "app/none", ROOT) is None

    call(vault.vault.add_token, "team-a", ["secret/data/team-a/"])
    for token, status in (("bad", 403), ("team-a", 403)):
        with pytest.raises(VaultError) as err:
            call(vault.vault.read_secret, "secret", "app/db", token)
        assert err.value.status == status
    with pytest.raises(VaultError) as err:
        call(vault.vault.read_secret, "nowhere", "app/db", ROOT)
    assert err.value.status == 404

    # The returned dict is a copy: changing it does not change Vault.
    copy = call(vault.vault.read_secret, "secret", "app/db", ROOT)
    assert copy is not None
    copy["password"] = "changed"
    assert read(client, "app/db")["data"]["data"] == {"password": "two"}


def test_write_secret_seeds_for_clients(vault: Server, client: hvac.Client) -> None:
    assert vault.loop.call(vault.vault.write_secret, "secret", "seeded", {"token": "hf_x"}) == 1
    assert vault.loop.call(vault.vault.write_secret, "secret", "seeded", {"token": "hf_y"}) == 2
    assert read(client, "seeded")["data"]["data"] == {"token": "hf_y"}
