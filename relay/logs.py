"""The relay's log: text for a person, or one JSON object a line for a log collector
(`[log] format = "json"`), and an access log that names the route, never the path.

Nothing logged carries PHI (the relay never has any) or a secret: requests are logged by their
route template (`/api/v1/transfers/{transfer_id}/objects/{index}`), not their path or query, and
only the structured fields in `FIELDS` are copied from a record into its JSON object.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from relay.errors import ConfigError
from transfer_codes.tokens import is_transfer_id

# The structured fields a record may carry (`extra=`) into its JSON object.
FIELDS = ("method", "route", "status", "duration_ms", "transfer_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def route_of(request: web.BaseRequest) -> str:
    """The route template a request matched, which holds no value from the request; "(no
    route)" for a path that matched none (it could hold anything, so it is not logged)."""
    info = getattr(request, "match_info", None)
    resource = getattr(getattr(info, "route", None), "resource", None)
    return str(getattr(resource, "canonical", None) or "(no route)")


def configure(log_format: str, level: str, log_file: Path | None) -> None:
    """Send the process's log to standard error (and `log_file`) in `log_format`."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        try:
            log_file.touch(mode=0o600, exist_ok=True)  # readable by the relay's user only
            handlers.append(logging.FileHandler(log_file))
        except OSError as e:
            raise ConfigError(f"log.file {log_file} cannot be written ({e.strerror}).") from e
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=handlers, force=True)
    logging.captureWarnings(True)  # a Python warning is a log line too, in the same format


class AccessLogger(AbstractAccessLogger):
    """One line a request: method, route template, status, duration, and the transfer's id
    when the route has one (a transfer id is a locator, not a secret). The text message shows
    the route with the transfer's id and small numbers (object index, record number) in place,
    so a person can follow one transfer; anything else stays a `{name}`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = route_of(request)
        fields: dict[str, object] = {
            "method": request.method,
            "route": route,
            "status": response.status,
            "duration_ms": round(time * 1000, 1),
        }
        info = getattr(request, "match_info", None)
        shown = route
        for name, value in (info or {}).items():
            if name == "transfer_id" and is_transfer_id(value):
                fields["transfer_id"] = value
            elif not (value.isascii() and value.isdigit() and len(value) <= 20):
                continue
            shown = shown.replace("{" + name + "}", value)
        self.logger.info(
            "%s %s %s %.1f ms",
            request.method,
            shown,
            response.status,
            fields["duration_ms"],
            extra=fields,
        )
