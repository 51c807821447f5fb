"""`corral admin` in subprocesses against the real services: projects, keys shown exactly
once, revocation, whoami, and clean errors for keys that may not do something."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import testkeys

CliRunner = Callable[..., subprocess.CompletedProcess[str]]
KEY = re.compile(r"corral_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create_key(corral: CliRunner, *args: str) -> tuple[str, str]:
    """(key, key id) of `corral admin keys create ARGS`, checking how the key is shown."""
    created = corral("admin", "keys", "create", *args)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    match = KEY.fullmatch(key)
    assert match is not None and created.stdout == key + "\n"  # the key alone on stdout
    warning = created.stderr.strip()
    assert "\n" not in warning and "only time it is shown" in warning
    assert match.group(1) in warning and key not in warning
    return key, match.group(1)


def _secret(key: str) -> str:
    return key.split("_", 2)[-1]


def test_projects_create_and_list(corral: CliRunner) -> None:
    name = _name("proj")
    created = corral("admin", "projects", "create", name, "--description", "from the cli")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"created project {name}"
    table = corral("admin", "projects", "list")
    assert table.returncode == 0 and table.stdout.startswith("NAME")
    assert any(line.split()[0] == name for line in table.stdout.splitlines()[1:])
    listed = json.loads(corral("admin", "projects", "list", "--json").stdout)
    assert {"name": name, "description": "from the cli"}.items() <= next(
        p for p in listed if p["name"] == name).items()
    again = corral("admin", "projects", "create", name)
    assert again.returncode == 1 and again.stderr.startswith("error: ALREADY_EXISTS: ")


def test_keys_create_list_whoami_revoke(corral: CliRunner) -> None:
    project = _name("keys")
    assert corral("admin", "projects", "create", project).returncode == 0
    key, key_id = _create_key(corral, "--project", project, "--role", "writer",
                              "--description", "ci")
    as_key = {"CORRAL_API_KEY": key}

    whoami = corral("admin", "whoami", env=as_key)
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.strip() == f"key {key_id}: writer in project {project}"
    assert json.loads(corral("admin", "whoami", "--json", env=as_key).stdout) == {
        "key_id": key_id, "project": project, "role": "writer", "instance_wide": False,
        "service": False}

    table = corral("admin", "keys", "list", "--project", project)
    assert table.returncode == 0 and table.stdout.startswith("KEY ID")
    assert key_id in table.stdout and _secret(key) not in table.stdout
    listed = corral("admin", "keys", "list", "--project", project, "--json")
    assert _secret(key) not in listed.stdout
    (entry,) = json.loads(listed.stdout)
    assert {"key_id": key_id, "project": project, "role": "writer", "description": "ci",
            "revoked": False}.items() <= entry.items()

    revoked = corral("admin", "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked key {key_id} (writer, project {project})"
    assert json.loads(corral("admin", "keys", "list", "--project", project,
                             "--json").stdout) == []
    (gone,) = json.loads(corral("admin", "keys", "list", "--project", project, "--revoked",
                                "--json").stdout)
    assert gone["revoked"] and gone["revoke_time"]

    refused = corral("admin", "whoami", env=as_key)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("error: UNAUTHENTICATED: ")
    assert "Traceback" not in refused.stderr and _secret(key) not in refused.stderr
    again = corral("admin", "keys", "revoke", "0" * 16)
    assert again.returncode == 1 and again.stderr.startswith("error: NOT_FOUND: ")


def test_reader_key_gets_a_clean_permission_denied(corral: CliRunner, tmp_path: Path) -> None:
    project = _name("readers")
    assert corral("admin", "projects", "create", project).returncode == 0
    reader, reader_id = _create_key(corral, "--project", project, "--role", "reader")
    writer, _ = _create_key(corral, "--project", project, "--role", "writer")
    dataset = _name("ds")
    assert corral("datasets", "create", dataset,
                  env={"CORRAL_API_KEY": writer}).returncode == 0
    as_reader = {"CORRAL_API_KEY": reader}

    listed = corral("datasets", "list", env=as_reader)
    assert listed.returncode == 0, listed.stderr
    for args in (("datasets", "create", _name("nope")),
                 ("admin", "keys", "create", "--project", project, "--role", "reader"),
                 ("admin", "projects", "create", _name("nope"))):
        denied = corral(*args, env=as_reader)
        assert denied.returncode == 1, args
        assert denied.stderr.startswith("error: PERMISSION_DENIED: "), denied.stderr
        assert "Traceback" not in denied.stderr and _secret(reader) not in denied.stderr
        assert denied.stdout == ""
    (tmp_path / "a.txt").write_text("a")
    upload = corral("upload", str(tmp_path / "a.txt"), "--dataset", dataset, env=as_reader)
    assert upload.returncode == 1 and "PERMISSION_DENIED" in upload.stderr
    assert "Traceback" not in upload.stderr and _secret(reader) not in upload.stderr
    keys = json.loads(corral("admin", "keys", "list", "--project", project, "--json").stdout)
    assert reader_id in {k["key_id"] for k in keys}


def test_instance_wide_keys_and_usage_errors(corral: CliRunner) -> None:
    key, key_id = _create_key(corral, "--instance-wide", "--role", "admin")
    assert corral("admin", "whoami", env={"CORRAL_API_KEY": key}).stdout.strip() == \
        f"key {key_id}: admin in all projects, instance-wide"
    project = _name("acting")
    assert corral("admin", "projects", "create", project).returncode == 0
    acting = corral("--project", project, "admin", "whoami", env={"CORRAL_API_KEY": key})
    assert acting.stdout.strip() == f"key {key_id}: admin in project {project}, instance-wide"
    for args in (("--role", "reader"), ("--role", "reader", "--project", project,
                                         "--instance-wide")):
        usage = corral("admin", "keys", "create", *args)
        assert usage.returncode == 2 and "--project NAME or --instance-wide" in usage.stderr
        assert usage.stdout == ""
    assert corral("admin", "keys", "revoke", key_id).returncode == 0
    bootstrap = corral("admin", "whoami")
    assert bootstrap.returncode == 0 and "admin in all projects, instance-wide" in \
        bootstrap.stdout
    assert testkeys.ADMIN_KEY not in bootstrap.stdout + bootstrap.stderr
