"""ops/compose/ stays usable as far as this machine can tell without Docker: compose.yaml is
YAML whose services name files that exist, the relay configuration it mounts loads with the
relay's own loader (`trauma-relay relay --print-config`), and its addresses and secrets agree
with what the other services provide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from relay import config as relay_config

COMPOSE = Path(__file__).resolve().parents[2] / "ops" / "compose"
RELAYS = ("relay1", "relay2")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    return loaded


def _mounted(service: dict[str, Any]) -> dict[str, Path]:
    """The service's bind mounts of files beside compose.yaml: container path -> host path."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = COMPOSE / source
    return found


def test_the_compose_file_has_every_service_and_names_existing_files() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "minio", "minio-setup", *RELAYS, "proxy"}
    for name, service in services.items():
        for host_path in _mounted(service).values():
            if host_path.name != "tls":  # made by ops/make_certificates.py, not kept here
                assert host_path.exists(), f"{name} mounts {host_path}, which is missing"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name} uses an undeclared secret {secret}"
    build = services["relay1"]["build"]
    context = (COMPOSE / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    assert (context / "pyproject.toml").is_file()
    dockerfile = (context / build["dockerfile"]).read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), f"the Dockerfile copies a missing {source}"
    assert "relay --config /etc/trauma-relay/relay.toml" in " ".join(
        json.loads(dockerfile.split("CMD ", 2)[-1].strip())
    )
    # MinIO's policy and lifecycle documents are JSON.
    for name in ("relay-policy.json", "lifecycle.json"):
        json.loads((COMPOSE / name).read_text())


def test_the_relay_configuration_loads_with_the_relays_loader(tmp_path: Path) -> None:
    compose = _compose()
    for name in RELAYS:
        service = compose["services"][name]
        config_file = _mounted(service)["/etc/trauma-relay/relay.toml"]
        # The secrets as compose mounts them (/run/secrets/NAME), made here as empty files.
        secrets = tmp_path / name / "secrets"
        secrets.mkdir(parents=True)
        for secret in service["secrets"]:
            (secrets / secret).write_text("x\n")
        text = config_file.read_text().replace("/run/secrets/", f"{secrets}/")
        local = tmp_path / name / "relay.toml"
        local.write_text(text)
        data = tmp_path / name / "data"
        checked = subprocess.run(
            [sys.executable, "-m", "trauma_relay.cli", "relay", "--print-config",
             "--config", str(local), "--data", str(data)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        config = relay_config.load(data, environ={}, config_file=local)
        # The relays reach the other services by their compose names.
        assert config.metadata_url is not None
        assert "@postgres:5432/" in config.metadata_url
        assert config.s3_endpoint_url == "http://minio:9000"
        assert config.objects_url is not None
        bucket = config.objects_url.removeprefix("s3://").split("/")[0]
        assert f"local/{bucket}" in " ".join(compose["services"]["minio-setup"]["command"])
        # The environment the operator's commands read names the same database.
        environment = service["environment"]
        assert environment["TRAUMA_RELAY_STORAGE_METADATA_URL"] == config.metadata_url
        assert environment["TRAUMA_RELAY_STORAGE_METADATA_PASSWORD_FILE"] == (
            "/run/secrets/" + config.metadata_password_file.name
            if config.metadata_password_file
            else None
        )
        # The proxy is the one address whose X-Forwarded-For is believed.
        proxy = compose["services"]["proxy"]["networks"]["backend"]["ipv4_address"]
        assert [str(a) for a in config.trusted_proxies] == [proxy]
        # Both instances share the data volume, so one decoy.key.
        assert "relay-data:/var/lib/trauma-relay" in service["volumes"]
        assert config.host == "0.0.0.0"  # noqa: S104 - inside the compose network
    caddy = (COMPOSE / "Caddyfile").read_text()
    for name in RELAYS:
        assert f"{name}:{config.port}" in caddy
