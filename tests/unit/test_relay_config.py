"""The relay's configuration (`relay.config`): what TOML and the environment may set, and that
anything out of bounds stops the relay with a sentence instead of a 500 or an endless transfer."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay import config
from relay.errors import ConfigError
from transfer_codes.manifest import MAX_RECORD_SIZE


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("TRAUMA_RELAY_EXPIRY_HOURS", "nan", "expiry_hours"),
        ("TRAUMA_RELAY_EXPIRY_HOURS", "inf", "expiry_hours"),
        ("TRAUMA_RELAY_EXPIRY_HOURS", "-inf", "expiry_hours"),
        ("TRAUMA_RELAY_EXPIRY_HOURS", "1e308", "expiry_hours"),  # times 3600 is infinite
        ("TRAUMA_RELAY_EXPIRY_HOURS", "336.01", "expiry_hours"),
        ("TRAUMA_RELAY_EXPIRY_HOURS", "0", "expiry_hours"),
        ("TRAUMA_RELAY_SWEEP_SECONDS", "nan", "sweep_seconds"),
        ("TRAUMA_RELAY_SWEEP_SECONDS", "inf", "sweep_seconds"),
        ("TRAUMA_RELAY_SWEEP_SECONDS", "3601", "sweep_seconds"),
        ("TRAUMA_RELAY_SWEEP_SECONDS", "-1", "sweep_seconds"),
        ("TRAUMA_RELAY_MAX_OBJECT_BYTES", "inf", "TRAUMA_RELAY_MAX_OBJECT_BYTES"),
    ],
)
def test_out_of_bounds_environment_is_refused(
    tmp_path: Path, var: str, value: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        config.load(tmp_path, environ={var: value})


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("expiry_hours = nan", "expiry_hours"),
        ("expiry_hours = inf", "expiry_hours"),
        ("expiry_hours = -nan", "expiry_hours"),
        ("expiry_hours = 400", "expiry_hours"),
        ("sweep_seconds = nan", "sweep_seconds"),
        ("sweep_seconds = inf", "sweep_seconds"),
        ("sweep_seconds = 7200", "sweep_seconds"),
        ("max_object_bytes = inf", "max_object_bytes"),  # int(inf) is an OverflowError
    ],
)
def test_out_of_bounds_toml_is_refused(tmp_path: Path, setting: str, words: str) -> None:
    (tmp_path / "relay.toml").write_text(setting + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=words):
        config.load(tmp_path, environ={})


def test_the_largest_values_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "relay.toml").write_text("expiry_hours = 336\nsweep_seconds = 3600\n")
    loaded = config.load(tmp_path, environ={})
    assert (loaded.expiry, loaded.sweep_interval) == (14 * 24 * config.HOURS, config.HOURS)
    loaded = config.load(
        tmp_path,
        environ={"TRAUMA_RELAY_EXPIRY_HOURS": "0.5", "TRAUMA_RELAY_SWEEP_SECONDS": "0.25"},
    )
    assert (loaded.expiry, loaded.sweep_interval) == (1800.0, 0.25)


def test_manifest_records_are_capped_at_what_readers_accept(tmp_path: Path) -> None:
    assert config.load(tmp_path, environ={}).max_manifest_record == MAX_RECORD_SIZE
    with pytest.raises(ConfigError, match="max_manifest_record"):
        config.load(tmp_path, environ={}, max_manifest_record=MAX_RECORD_SIZE + 1)
    with pytest.raises(ConfigError, match="max_manifest_record"):
        config.load(tmp_path, environ={}, max_manifest_record=0)


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('objects_url = "/srv/objects"', "s3://BUCKET"),
        ('objects_url = "https://bucket.example.org"', "s3://BUCKET"),
        ('objects_url = "s3://KEY:SECRET@bucket"', "never the URL"),
        ('objects_url = "s3://Bucket_Name"', "not an S3 bucket name"),
        ('objects_url = "s3://ok-bucket/a//b"', "key prefix"),
        ('objects_url = "s3://ok-bucket/tab\there"', "s3://BUCKET/PREFIX"),
        ('objects_url = "s3://ok-bucket"\ns3_endpoint_url = "minio:9000"', "s3_endpoint_url"),
        ('objects_url = "s3://b-1"\ns3_endpoint_url = "http://k:s@minio:9000"', "s3_endpoint_url"),
        ('objects_url = "s3://ok-bucket"\ns3_credentials_file = "/no/such/file"', "not a file"),
        ('s3_endpoint_url = "http://127.0.0.1:9000"', "set storage.objects_url too"),
        ('s3_region = "eu-west-1"', "set storage.objects_url too"),
    ],
)
def test_a_bad_object_store_setting_is_refused(tmp_path: Path, toml: str, words: str) -> None:
    (tmp_path / "relay.toml").write_text(toml + "\n")
    with pytest.raises(ConfigError, match=words):
        config.load(tmp_path, environ={})


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://relay:s3cret@db/relay", "may not hold the database password"),
        ("postgresql://relay@db/relay?password=s3cret", "may not hold the database password"),
        ("postgres://relay@db/relay?sslmode=require&password=", "the database password"),
        ("postgresql://relay@db/relay?pass%77ord=s3cret", "may not hold the database password"),
        ("postgresql://relay@db/relay?sslpassword=s3cret", r"TLS client key \(sslpassword\)"),
    ],
)
def test_a_password_in_the_metadata_url_is_refused(tmp_path: Path, url: str, words: str) -> None:
    """asyncpg reads a password from the URL's query as well as its user info; either would
    then show in the process list, the environment and --print-config."""
    with pytest.raises(ConfigError, match=words) as refused:
        config.load(tmp_path, environ={"TRAUMA_RELAY_METADATA_URL": url})
    assert "s3cret" not in str(refused.value)


def test_a_metadata_url_with_other_query_settings_is_taken(tmp_path: Path) -> None:
    url = "postgresql://relay@db/relay?sslmode=verify-full&passfile=/etc/trauma-relay/pgpass"
    assert config.load(tmp_path, environ={"TRAUMA_RELAY_METADATA_URL": url}).metadata_url == url


def test_an_s3_bucket_is_chosen_in_relay_toml_or_the_environment(tmp_path: Path) -> None:
    assert config.load(tmp_path, environ={}).objects_url is None  # the folder stays the default
    credentials = tmp_path / "s3-credentials"
    credentials.write_text("[default]\n")
    (tmp_path / "relay.toml").write_text(
        'objects_url = "s3://trauma-objects/relay-1"\n'
        's3_endpoint_url = "https://minio.example.org:9000"\n'
        's3_region = "eu-central-1"\n'
        f's3_credentials_file = "{credentials}"\n'
    )
    loaded = config.load(tmp_path, environ={})
    assert (
        loaded.objects_url,
        loaded.s3_endpoint_url,
        loaded.s3_region,
        loaded.s3_credentials_file,
    ) == (
        "s3://trauma-objects/relay-1",
        "https://minio.example.org:9000",
        "eu-central-1",
        credentials,
    )
    overridden = config.load(tmp_path, environ={"TRAUMA_RELAY_OBJECTS_URL": "s3://other-bucket"})
    assert overridden.objects_url == "s3://other-bucket"


def test_a_metadata_password_file_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The PostgreSQL password file is read like the agents' credential files: one that other
    users of the machine can read is used, with a warning saying how to close it."""
    from relay.storage.postgres import read_password

    secret = tmp_path / "pg-password"
    secret.write_text("s3cret-password\n")
    secret.chmod(0o600)
    with caplog.at_level("WARNING", logger="relay"):
        assert read_password(secret) == "s3cret-password"
    assert caplog.records == []
    secret.chmod(0o644)
    with caplog.at_level("WARNING", logger="relay"):
        assert read_password(secret) == "s3cret-password"
    (record,) = caplog.records
    assert "can be read by other users of this machine" in record.getMessage()
    assert f"(chmod 600 {secret})" in record.getMessage()
    assert "s3cret" not in record.getMessage()
