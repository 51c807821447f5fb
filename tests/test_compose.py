"""docker-compose.yml is valid (checked by docker-compose itself; no engine needed) and every
setting it passes to a corral service is one that service's config actually reads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

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


@pytest.fixture(scope="module")
def compose() -> dict:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: scripts/test.sh installs Debian's package"
    out = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
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
