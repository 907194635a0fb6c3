"""The relay keeps its sealed objects in an S3 bucket when its relay.toml names one; a bucket
it cannot use stops it at start with a sentence, not at the first upload with a 500."""

from __future__ import annotations

import json
from pathlib import Path

from peers.ports import free_port
from peers.s3 import S3Bucket

from e2e.harness import run_cli


def test_a_bucket_the_relay_cannot_use_stops_it_at_start(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    data = tmp_path / "relay-data"
    data.mkdir()
    settings = {**s3_bucket.settings("relay"), "objects_url": "s3://no-such-bucket/relay"}
    (data / "relay.toml").write_text(
        "".join(f"{k} = {json.dumps(str(v))}\n" for k, v in settings.items())
    )
    listen = f"127.0.0.1:{free_port()}"
    run = run_cli(["relay", "--data", str(data), "--listen", listen], cwd=tmp_path, timeout=60)
    run.failed()
    assert "s3://no-such-bucket/relay/" in run.message
    assert "cannot be used" in run.message
    assert s3_bucket.endpoint_url in run.message
