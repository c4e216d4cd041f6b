"""``scripts/credentials.py``: the secrets files the deployments read, made as users make them.

Run as a subprocess with the system-style interpreter and temporary paths only, so the
repository's own ``.env`` and broker definitions are never touched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path

from caesar_common import access

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "credentials.py"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_env_makes_a_private_file_with_every_secret(tmp_path: Path) -> None:
    path = tmp_path / "run" / "secrets.env"  # its directory is made too
    run("env", path)
    assert mode(path) == 0o600
    values = access.parse_env_file(path.read_text())
    assert list(values) == list(access.SECRET_NAMES)
    assert all(values.values())
    assert len(set(values.values())) == len(values), "two secrets share a value"
    for value in values.values():
        # 192 random bits, URL-safe: they go into amqp:// and mongodb:// URLs unquoted.
        assert len(value) >= 32
        assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert path.read_text().startswith("#"), "the file says what it is"
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"


def test_env_keeps_existing_values_and_adds_missing_ones(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    run("env", path)
    first = access.parse_env_file(path.read_text())
    run("env", path)
    assert access.parse_env_file(path.read_text()) == first, "a second run changed the secrets"

    # An older file lacking some names, with a value of the operator's own.
    dropped = ["KEYCLOAK_DB_PASSWORD", access.broker_secret(access.SUBSCRIBER)]
    kept = {k: v for k, v in first.items() if k not in dropped}
    kept["DB_API_PASSWORD"] = "chosen-by-the-operator"
    path.write_text("".join(f"{k}={v}\n" for k, v in kept.items()))
    path.chmod(0o600)
    result = run("env", path)
    completed = access.parse_env_file(path.read_text())
    assert set(completed) == set(access.SECRET_NAMES)
    assert {k: completed[k] for k in kept} == kept
    assert all(completed[name] and completed[name] != first[name] for name in dropped)
    assert mode(path) == 0o600
    assert "completed" in result.stderr


def test_env_rotate_replaces_every_secret(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    run("env", path)
    before = access.parse_env_file(path.read_text())
    run("env", path, "--rotate")
    after = access.parse_env_file(path.read_text())
    assert set(after) == set(before) == set(access.SECRET_NAMES)
    assert all(after[name] != before[name] for name in access.SECRET_NAMES)
    assert mode(path) == 0o600


def test_env_writes_a_private_file_over_a_world_readable_one(tmp_path: Path) -> None:
    """A file the script has to (re)write comes out 0600, whatever mode it had."""
    path = tmp_path / "secrets.env"
    path.write_text("")
    path.chmod(0o644)
    run("env", path)
    assert mode(path) == 0o600


def test_broker_definitions_hold_only_hashes_of_the_env_passwords(tmp_path: Path) -> None:
    """What compose's broker loads: every role's user, no guest, no password in clear."""
    env, out = tmp_path / "secrets.env", tmp_path / "definitions.json"
    run("env", env)
    run("broker-definitions", "--env", env, "--out", out)
    values = access.parse_env_file(env.read_text())
    text = out.read_text()
    for value in values.values():
        assert value not in text, "a password in clear in the definitions"
    definitions = json.loads(text)
    users = {user["name"]: user for user in definitions["users"]}
    assert "guest" not in users
    assert set(users) == {access.broker_user(role) for role in access.BROKER_GRANTS}
    for role in access.BROKER_GRANTS:
        user = users[access.broker_user(role)]
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        raw = base64.b64decode(user["password_hash"])
        salt, digest = raw[:4], raw[4:]
        assert digest == hashlib.sha256(salt + values[access.broker_secret(role)].encode()).digest(), role
        assert ("administrator" in user["tags"]) == (role == access.ADMIN)
    assert {v["name"] for v in definitions["vhosts"]} == {"/"}
    assert mode(out) == 0o644  # the broker's container user reads it through a bind mount


def test_broker_definitions_refuse_an_incomplete_env(tmp_path: Path) -> None:
    env = tmp_path / "secrets.env"
    env.write_text("BROKER_API_PASSWORD=x\n")
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "broker-definitions",
            "--env",
            str(env),
            "--out",
            str(tmp_path / "d.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "lacks" in result.stderr
    assert not (tmp_path / "d.json").exists()
