"""A local S3-API server for tests: moto's standalone server (`python -m moto.server`) as a
child process on a free loopback port, with one bucket made for the test session.

`S3Bucket.settings(prefix)` gives the relay configuration that points a relay (or an
`S3ObjectStore`) at the bucket under a prefix of its own; `keys(prefix)` lists what is really in
the bucket, with a client of its own, not through the store under test.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

from peers.ports import free_port

BUCKET = "trauma-relay-test"
REGION = "us-east-1"
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"


@dataclass(frozen=True)
class S3Bucket:
    endpoint_url: str
    bucket: str
    credentials_file: Path

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def new_prefix(self) -> str:
        """A key prefix no other test uses (every test gets a bucket of its own, in effect)."""
        return f"test-{uuid.uuid4().hex}"

    def settings(self, prefix: str) -> dict[str, Any]:
        """`RelayConfig` fields for a relay keeping its objects under `prefix`."""
        return {
            "objects_url": f"s3://{self.bucket}/{prefix}",
            "s3_endpoint_url": self.endpoint_url,
            "s3_region": REGION,
            "s3_credentials_file": self.credentials_file,
        }

    def keys(self, prefix: str) -> list[str]:
        """Every key in the bucket under `prefix`, and every unfinished multipart upload."""
        s3 = self.client()
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        uploads = s3.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        keys.extend("(unfinished) " + u["Key"] for u in uploads.get("Uploads", []))
        return keys

    def read(self, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


class MotoServer:
    """`python -m moto.server` on a free loopback port, until the context ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> S3Bucket:
        self.folder.mkdir(parents=True, exist_ok=True)
        credentials = self.folder / "credentials"
        credentials.write_text(
            f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        )
        log = (self.folder / "moto.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited: see {self.folder / 'moto.log'}")
            try:
                with urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=2):  # noqa: S310
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError("moto server did not answer within 60 s") from None
                time.sleep(0.1)
        bucket = S3Bucket(self.endpoint_url, BUCKET, credentials)
        bucket.client().create_bucket(Bucket=BUCKET)
        return bucket

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
