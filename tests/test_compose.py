"""docker-compose.yml is valid (checked by docker-compose itself; no engine needed) and every
setting it passes to a corral service is one that service's config actually reads."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from corral.credentials import parse_api_key
from services.catalog.config import CatalogConfig
from services.common.config import env_names
from services.preprocess.config import PreprocessConfig
from services.upload.config import UploadConfig

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"catalog": CatalogConfig, "upload": UploadConfig, "preprocess": PreprocessConfig}
REQUIRED = {
    "catalog": {"CORRAL_CATALOG_ADDR", "CORRAL_DATABASE_URL", "CORRAL_BLOB_STORE"},
    "upload": {"CORRAL_UPLOAD_ADDR", "CORRAL_CATALOG_ADDR", "CORRAL_BLOB_STORE"},
    "preprocess": {"CORRAL_PREPROCESS_ADDR", "CORRAL_CATALOG_ADDR", "CORRAL_BLOB_STORE"},
}


KEY_VARIABLES = ("CORRAL_SERVICE_KEY", "CORRAL_BOOTSTRAP_ADMIN_KEY")


def compose_config(env_file: Path, keys: dict[str, str] | None = None,
                   ) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with the key variables only as given and from `env_file`
    (never the test session's own, nor a developer's .env)."""
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: scripts/test.sh installs Debian's package"
    env = {name: value for name, value in os.environ.items() if name not in KEY_VARIABLES}
    env.update(keys or {})
    return subprocess.run([exe, "--env-file", str(env_file), "-f",
                           str(ROOT / "docker-compose.yml"), "config"],
                          capture_output=True, text=True, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def no_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.touch()
    return path


@pytest.fixture(scope="module")
def compose(no_env_file: Path) -> dict:
    out = compose_config(no_env_file, keys={"CORRAL_SERVICE_KEY": "service-key",
                                            "CORRAL_BOOTSTRAP_ADMIN_KEY": "admin-key"})
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_runs_real_minio_and_postgres(compose: dict) -> None:
    services = compose["services"]
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["postgres"]["image"].startswith("postgres")
    for name in CONFIGS:
        assert services[name]["build"], f"{name} is built from the Dockerfile"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_service_setting_is_read_by_the_code(compose: dict, name: str) -> None:
    service = compose["services"][name]
    env = service["environment"]
    names = set(env if isinstance(env, dict) else (e.split("=", 1)[0] for e in env))
    corral_names = {n for n in names if n.startswith("CORRAL_")}
    unknown = corral_names - env_names(CONFIGS[name])
    assert not unknown, f"{name} sets variables its config does not read: {sorted(unknown)}"
    assert REQUIRED[name] <= corral_names, f"{name} misses {sorted(REQUIRED[name] - names)}"
    assert service["command"][-1] == f"services.{name}"
    assert (ROOT / "services" / name / "__main__.py").exists()


def test_wiring_points_services_at_each_other(compose: dict) -> None:
    services = compose["services"]
    for name in ("upload", "preprocess"):
        assert services[name]["environment"]["CORRAL_CATALOG_ADDR"] == "catalog:50051"
    catalog_env = services["catalog"]["environment"]
    assert "@postgres:5432/" in catalog_env["CORRAL_DATABASE_URL"]
    for name in CONFIGS:
        assert services[name]["environment"]["CORRAL_S3_ENDPOINT"] == "minio:9000"


def test_services_share_the_service_key_and_the_catalog_gets_the_admin_key(
        compose: dict) -> None:
    services = compose["services"]
    for name in CONFIGS:
        assert services[name]["environment"]["CORRAL_SERVICE_KEY"] == "service-key", name
    assert services["catalog"]["environment"]["CORRAL_BOOTSTRAP_ADMIN_KEY"] == "admin-key"
    for name in ("upload", "preprocess"):
        assert "CORRAL_BOOTSTRAP_ADMIN_KEY" not in services[name]["environment"]


def test_compose_refuses_to_start_without_keys(no_env_file: Path) -> None:
    out = compose_config(no_env_file)
    assert out.returncode != 0
    assert "scripts/compose_env.py" in out.stderr


def test_compose_env_script_writes_fresh_keys_once(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    script = [sys.executable, str(ROOT / "scripts" / "compose_env.py"), "--output",
              str(env_file)]
    written = subprocess.run(script, capture_output=True, text=True, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert set(values) == set(KEY_VARIABLES)
    assert all(parse_api_key(key) is not None for key in values.values())
    assert values["CORRAL_SERVICE_KEY"] != values["CORRAL_BOOTSTRAP_ADMIN_KEY"]
    assert not any(key in written.stdout + written.stderr for key in values.values())
    again = subprocess.run(script, capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 1 and "exists" in again.stderr
    assert dict(line.split("=", 1) for line in env_file.read_text().splitlines()) == values
    out = compose_config(env_file)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert services["upload"]["environment"]["CORRAL_SERVICE_KEY"] == \
        values["CORRAL_SERVICE_KEY"]
    assert services["catalog"]["environment"]["CORRAL_BOOTSTRAP_ADMIN_KEY"] == \
        values["CORRAL_BOOTSTRAP_ADMIN_KEY"]
