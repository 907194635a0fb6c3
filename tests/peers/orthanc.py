"""A private Orthanc PACS for one test: own folders, own ports, REST helpers over urllib."""

import base64
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from . import PEER_ENVIRONMENT
from .ports import free_ports

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

START_TIMEOUT = 30.0  # seconds for Orthanc to answer GET /system
STOP_TIMEOUT = 10.0  # seconds after SIGTERM before SIGKILL
HTTP_TIMEOUT = 30.0  # seconds per REST call
_LOG_TAIL = 4000  # characters of Orthanc's log shown when it fails

# No proxy: the test machine's HTTP(S)_PROXY must not capture calls to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class OrthancError(RuntimeError):
    """Orthanc did not start, or a REST call to it failed."""


class OrthancServer:
    """Orthanc listening on 127.0.0.1, started on entry and stopped on exit.

    Its config, storage, index and log live in ``workdir`` (a temporary folder, removed on
    exit, when not given). ``accepted_transfer_syntaxes`` limits the C-STORE SCP to those UIDs,
    as many PACS refuse compressed syntaxes. ``allow_find=False`` keeps Orthanc's own default of
    refusing C-FIND from callers not listed in ``DicomModalities``. ``dicomweb`` loads the
    DICOMweb plugin, serving STOW-RS, QIDO-RS and WADO-RS under ``dicomweb_url``.
    ``dicom_modalities`` is Orthanc's ``DicomModalities``: the AE titles it knows, with their
    address and what each may do (``AllowFind``, ``AllowMove``...), as a PACS administrator would
    configure them. ``registered_users`` (name: password) turns on HTTP basic authentication
    for the REST API and DICOMweb alike; the REST helpers then sign in as the first user.
    ``lua`` is a Lua script Orthanc runs (``LuaScripts``), e.g. a ``ReceivedInstanceFilter``
    that refuses some images, as a PACS that rejects one image midway through a study.

    Orthanc binds its DICOM and HTTP ports on every interface (1.10 has no bind address
    option); the REST API refuses anything but localhost (``RemoteAccessAllowed`` false).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        ae_title: str = "ORTHANC",
        accepted_transfer_syntaxes: Sequence[str] | None = None,
        dicomweb: bool = False,
        allow_find: bool = True,
        dicom_modalities: Mapping[str, Mapping[str, Any]] | None = None,
        executable: str = ORTHANC,
        registered_users: Mapping[str, str] | None = None,
        lua: str = "",
    ) -> None:
        self.ae_title = ae_title
        self.host = "127.0.0.1"
        self.http_port, self.dicom_port = free_ports(2)
        self.url = f"http://{self.host}:{self.http_port}"
        self.dicomweb_url = f"{self.url}/dicom-web"
        self._workdir = workdir
        self._accepted_transfer_syntaxes = accepted_transfer_syntaxes
        self._dicomweb = dicomweb
        self._allow_find = allow_find
        self._dicom_modalities = dict(dicom_modalities or {})
        self._executable = executable
        self._registered_users = dict(registered_users or {})
        self._lua = lua
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = Path()

    def config(self, workdir: Path) -> dict[str, Any]:
        """The Orthanc configuration written to ``workdir/orthanc.json``."""
        config: dict[str, Any] = {
            "Name": "trauma-relay test PACS",
            "StorageDirectory": str(workdir / "storage"),
            "IndexDirectory": str(workdir / "index"),
            "TemporaryDirectory": str(workdir / "tmp"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.ae_title,
            "DicomCheckCalledAet": False,
            # Answer C-FIND from unlisted AE titles too: the receiving site queries the PACS
            # (patient identity check) before it stores anything.
            "DicomAlwaysAllowFind": self._allow_find,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpCompressionEnabled": False,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "SaveJobs": False,
            "Plugins": [DICOMWEB_PLUGIN] if self._dicomweb else [],
        }
        if self._registered_users:
            config["AuthenticationEnabled"] = True
            config["RegisteredUsers"] = self._registered_users
        if self._dicom_modalities:
            config["DicomModalities"] = self._dicom_modalities
        if self._accepted_transfer_syntaxes is not None:
            config["AcceptedTransferSyntaxes"] = list(self._accepted_transfer_syntaxes)
        if self._dicomweb:
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": True}
        if self._lua:
            config["LuaScripts"] = [str(workdir / "script.lua")]
        return config

    def __enter__(self) -> Self:
        if self._workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="orthanc-")
            workdir = Path(self._tempdir.name)
        else:
            workdir = self._workdir
        for folder in ("storage", "index", "tmp"):
            (workdir / folder).mkdir(parents=True, exist_ok=True)
        if self._lua:
            (workdir / "script.lua").write_text(self._lua)
        config_path = workdir / "orthanc.json"
        config_path.write_text(json.dumps(self.config(workdir), indent=2))
        self.log_path = workdir / "orthanc.log"
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [self._executable, str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                env={**os.environ, **PEER_ENVIRONMENT},
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def log_tail(self) -> str:
        """The end of Orthanc's log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-_LOG_TAIL:]
        except OSError:
            return "(no log)"

    # REST helpers. Orthanc ids are its own hashes, not DICOM UIDs.

    def system(self) -> dict[str, Any]:
        """``GET /system``: version, AE title, ports."""
        result: dict[str, Any] = self.get_json("/system")
        return result

    def instances(self) -> list[str]:
        """Orthanc ids of every stored instance."""
        return list(self.get_json("/instances"))

    def studies(self) -> list[str]:
        """Orthanc ids of every stored study."""
        return list(self.get_json("/studies"))

    def patients(self) -> list[str]:
        """Orthanc ids of every stored patient."""
        return list(self.get_json("/patients"))

    def instance_tags(self, orthanc_id: str) -> dict[str, Any]:
        """An instance's tags by keyword (``/simplified-tags``), e.g. ``{"PatientID": ...}``."""
        result: dict[str, Any] = self.get_json(f"/instances/{_quote(orthanc_id)}/simplified-tags")
        return result

    def instance_file(self, orthanc_id: str) -> bytes:
        """The Part 10 file Orthanc stored for an instance."""
        return self.get(f"/instances/{_quote(orthanc_id)}/file")

    def find_by_sop_instance_uid(self, sop_instance_uid: str) -> str | None:
        """The Orthanc id of the instance with this SOP Instance UID, or ``None``."""
        matches = self.post_json("/tools/lookup", sop_instance_uid.encode("ascii"))
        for match in matches:
            if match.get("Type") == "Instance":
                return str(match["ID"])
        return None

    def get(self, path: str) -> bytes:
        """``GET`` a REST path; raise ``OrthancError`` unless it answers 2xx."""
        return self._request("GET", path)

    def get_json(self, path: str) -> Any:
        """``GET`` a REST path and decode its JSON answer."""
        return json.loads(self.get(path))

    def post_json(self, path: str, body: bytes, content_type: str = "text/plain") -> Any:
        """``POST`` ``body`` to a REST path and decode its JSON answer."""
        return json.loads(self._request("POST", path, body, content_type))

    def delete(self, path: str) -> None:
        """``DELETE`` a REST resource (``/studies/<id>``), as a PACS administrator would."""
        self._request("DELETE", path)

    def _request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> bytes:
        headers = {"Content-Type": content_type} if content_type else {}
        for user, password in list(self._registered_users.items())[:1]:
            signed = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {signed}"
        # The URL is always http://127.0.0.1:<our port>/<path>, never taken from outside input.
        url = self.url + path
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with _OPENER.open(request, timeout=HTTP_TIMEOUT) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise OrthancError(f"{method} {path} answered {error.code}: {detail}") from error
        except OSError as error:
            raise OrthancError(f"{method} {path} failed: {error}\n{self.log_tail()}") from error

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise OrthancError(
                    f"Orthanc exited with status {code} while starting:\n{self.log_tail()}"
                )
            try:
                self.system()
                return
            except OrthancError as error:
                last_error = error
            time.sleep(0.05)
        reason = str(last_error).splitlines()[0] if last_error else "no attempt"
        raise OrthancError(
            f"Orthanc did not answer GET /system within {START_TIMEOUT} s "
            f"({reason}):\n{self.log_tail()}"
        )

    def pause(self) -> None:
        """Stop Orthanc where it is (SIGSTOP): connections stay open, nothing is answered."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop Orthanc before the test ends (a PACS going down); its files go with it."""
        self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.send_signal(signal.SIGCONT)  # in case a test left it paused
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None


def _quote(orthanc_id: str) -> str:
    return urllib.parse.quote(orthanc_id, safe="")
