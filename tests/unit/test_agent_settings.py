"""The agents' typed settings: the printed configuration parses back to what it was printed
from, every layer (file, environment, --set) is typed and named in its errors, and what would
be unsafe stops the start."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiving_site.cli import RECEIVER
from receiving_site.settings import ReceiverSettings
from sending_site.cli import SENDER
from sending_site.settings import SenderSettings
from site_agent.errors import ConfigUnreadable, SettingInvalid
from site_agent.settings import HostPort, load, render, replaced
from site_agent.settings.kinds import Listen, Span, Text
from site_agent.settings.schema import every_setting

SENDER_PREFIX = SENDER.env_prefix
RECEIVER_PREFIX = RECEIVER.env_prefix
AGENTS = [(SenderSettings, SENDER_PREFIX), (ReceiverSettings, RECEIVER_PREFIX)]
IDS = ["sender", "receiver"]
VALID = ("relay.url=https://relay.example",)


def _load(root: type = SenderSettings, prefix: str = SENDER_PREFIX, **options: Any) -> Any:
    options.setdefault("environ", {})
    return load(root, prefix, **options)


def _printed(settings: object, prefix: str) -> str:
    return render(settings, title="test", prefix=prefix, command="trauma-relay x console")


@pytest.mark.parametrize(("root", "prefix"), AGENTS, ids=IDS)
def test_the_printed_defaults_parse_back_to_the_defaults(
    root: type, prefix: str, tmp_path: Path
) -> None:
    defaults = _load(root, prefix, check=False)
    assert defaults == root()
    file = tmp_path / "agent.toml"
    file.write_text(_printed(defaults, prefix), encoding="utf-8")
    assert _load(root, prefix, file=file, check=False) == defaults


@pytest.mark.parametrize(("root", "prefix"), AGENTS, ids=IDS)
def test_every_setting_is_printed_with_its_help(root: type, prefix: str) -> None:
    text = _printed(root(), prefix)
    keys = {line.split(" = ")[0] for line in text.splitlines() if " = " in line[:40]}
    settings = list(every_setting(root))
    assert {s.key for s in settings} <= keys
    assert all(s.help.strip() for s in settings)
    assert len({s.env_name(prefix) for s in settings}) == len(settings)
    assert all(len(line) <= 100 for line in text.splitlines())


def test_changed_settings_print_and_parse_back(tmp_path: Path) -> None:
    changed = _load(
        assignments=(
            "relay.url=https://relay.example:8443",
            "relay.credential_file=/etc/trauma-relay/er.credential",
            'console.site_name=St. Mary\'s "Main" ED — Nord',
            "console.listen=[::1]:9443",
            "console.idle_timeout=45m",
            "spool.stable_age=1.5s",
            "pacs.host=pacs.hospital.local",
            "pacs.port=11112",
        )
    )
    file = tmp_path / "agent.toml"
    file.write_text(_printed(changed, SENDER_PREFIX), encoding="utf-8")
    assert _load(file=file) == changed


@given(
    st.text(st.characters(min_codepoint=32, exclude_characters="\x7f", exclude_categories=("Cs",)))
)
def test_any_text_round_trips(text: str) -> None:
    import tomllib

    kind = Text()
    assert kind.from_toml(tomllib.loads(f"v = {kind.to_toml(text)}")["v"]) == text


@given(st.integers(min_value=0, max_value=8760), st.sampled_from([1.0, 0.5, 60.0, 3600.0, 0.001]))
def test_any_duration_round_trips(count: int, unit: float) -> None:
    import tomllib

    kind, seconds = Span(), count * unit
    assert kind.from_toml(tomllib.loads(f"v = {kind.to_toml(seconds)}")["v"]) == seconds


def test_set_values_are_typed() -> None:
    settings = _load(
        assignments=(
            *VALID,
            "console.idle_timeout=45m",
            "pacs.port=11112",
            "console.listen=[::1]:8760",
            "console.tls_certificate=",
            "dicom.ae_title= ER_NODE ",
        )
    )
    assert settings.console.idle_timeout == 45 * 60.0
    assert settings.pacs.port == 11112
    assert settings.console.listen == HostPort("::1", 8760)
    assert settings.console.tls_certificate is None
    assert settings.dicom.ae_title == "ER_NODE"


def test_receiver_settings_are_typed() -> None:
    settings = _load(
        ReceiverSettings,
        RECEIVER_PREFIX,
        assignments=(*VALID, "pacs.associations=8", "stow.url=https://pacs.local/dicom-web/"),
    )
    assert settings.pacs.associations == 8
    assert settings.stow.url == "https://pacs.local/dicom-web"


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("console.listen=x", "console.listen: expected HOST:PORT, got 'x' (from --set)"),
        (
            "console.listen=127.0.0.1:70000",
            "console.listen: expected HOST:PORT with a port from 1 to 65535, got "
            "'127.0.0.1:70000' (from --set)",
        ),
        ("pacs.port=104.5", "pacs.port: expected a whole number from 1 to 65535, got '104.5'"),
        ("console.idle_timeout=soon", "console.idle_timeout: expected a duration such as 90s"),
        ("dicom.ae_title=A\\B", "dicom.ae_title: expected an AE title of 1 to 16"),
        ("relay.url=ftp://relay", "relay.url: expected an http:// or https:// address"),
        (
            "relay.url=https://er:secret@relay.example",
            "relay.url: must not hold a user name or password",
        ),
        (
            "console.listn=x",
            "console.listn: no such setting (from --set); did you mean console.listen?",
        ),
        ("console.listen", "--set console.listen: expected SECTION.KEY=VALUE"),
        ("relay.url=https://relay.example/api", "relay.url: 'https://relay.example/api' is not"),
        ("relay.url=http://relay.example", "relay.url: The relay address http://relay.example"),
        (
            "sheet.site_phone=+1 555 010 0199 (charge nurse)",
            "sheet.site_phone: '+1 555 010 0199 (charge nurse)' is not a phone number",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(assignment: str, message: str) -> None:
    with pytest.raises(SettingInvalid) as refused:
        _load(assignments=(*VALID, assignment))
    assert str(refused.value).startswith(message)


def test_a_password_in_a_url_is_not_repeated_in_the_error() -> None:
    with pytest.raises(SettingInvalid) as refused:
        _load(assignments=("relay.url=https://er:hunter2@relay.example",))
    assert "hunter2" not in str(refused.value)


def test_a_file_value_of_the_wrong_type_names_the_setting_and_the_file(tmp_path: Path) -> None:
    file = tmp_path / "sender.toml"
    file.write_text('[pacs]\nport = "104"\n', encoding="utf-8")
    with pytest.raises(SettingInvalid) as refused:
        _load(file=file)
    assert str(refused.value) == (
        f"pacs.port: expected a whole number from 1 to 65535, got '104' (in {file})"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[consol]\nlisten = '127.0.0.1:1'\n", "consol: no such section"),
        ("[console]\nlistn = '127.0.0.1:1'\n", "console.listn: no such setting"),
        ("console = 3\n", "console: expected a [console] table"),
    ],
)
def test_unknown_names_in_the_file_are_refused(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "sender.toml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(SettingInvalid, match=message.replace("[", r"\[").replace("]", r"\]")):
        _load(file=file, check=False)


def test_an_unreadable_or_broken_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigUnreadable, match="could not be read"):
        _load(file=tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[console\n", encoding="utf-8")
    with pytest.raises(ConfigUnreadable, match="is not valid TOML"):
        _load(file=broken)


def test_layers_apply_in_order_file_environment_set(tmp_path: Path) -> None:
    file = tmp_path / "sender.toml"
    file.write_text(
        '[relay]\nurl = "https://from-file"\n[console]\nsite_name = "file"\nidle_timeout = "10m"\n',
        encoding="utf-8",
    )
    environ = {
        f"{SENDER_PREFIX}_CONSOLE_SITE_NAME": "environment",
        f"{SENDER_PREFIX}_CONSOLE_IDLE_TIMEOUT": "20m",
        "TRAUMA_RELAY_CREDENTIAL": "not a setting of ours",
    }
    settings = _load(file=file, environ=environ, assignments=("console.idle_timeout=40m",))
    assert settings.relay.url == "https://from-file"
    assert settings.console.site_name == "environment"
    assert settings.console.idle_timeout == 40 * 60.0


def test_environment_values_are_typed_and_named_in_errors() -> None:
    environ = {f"{SENDER_PREFIX}_PACS_PORT": "eleven"}
    with pytest.raises(SettingInvalid) as refused:
        _load(environ=environ, assignments=VALID)
    assert str(refused.value) == (
        f"pacs.port: expected a whole number from 1 to 65535, got 'eleven' "
        f"(from {SENDER_PREFIX}_PACS_PORT)"
    )


def test_an_unknown_environment_setting_is_refused() -> None:
    with pytest.raises(SettingInvalid, match=f"{SENDER_PREFIX}_CONSOLE_LISTN: no such setting"):
        _load(environ={f"{SENDER_PREFIX}_CONSOLE_LISTN": "127.0.0.1:1"}, assignments=VALID)


def test_the_relay_url_is_required() -> None:
    with pytest.raises(SettingInvalid, match=r"^relay\.url: required"):
        _load()
    assert _load(check=False).relay.url == ""


@pytest.mark.parametrize(
    ("assignments", "problem"),
    [
        (("console.listen=0.0.0.0:8760",), "console.listen: 0.0.0.0:8760 can be reached"),
        (("console.tls_certificate=/etc/cert.pem",), "console.tls_key: set both"),
        (("console.idle_timeout=30s",), "console.idle_timeout: must be from 1m to 12h"),
        (("console.idle_timeout=13h",), "console.idle_timeout: must be from 1m to 12h"),
    ],
)
def test_unsafe_or_incomplete_settings_stop_the_start(
    assignments: tuple[str, ...], problem: str
) -> None:
    with pytest.raises(SettingInvalid, match="^" + problem.replace(".", r"\.")):
        _load(assignments=(*VALID, *assignments))


def test_trusted_proxies_are_networks_from_the_file_and_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "sender.toml"
    file.write_text('[console]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/24"]\n')
    from_file = _load(file=file, assignments=VALID).console.trusted_proxies
    assert from_file == (ip_network("127.0.0.1"), ip_network("10.0.0.0/24"))
    environ = {f"{SENDER_PREFIX}_CONSOLE_TRUSTED_PROXIES": "::1, 10.0.0.0/24"}
    from_environment = _load(environ=environ, assignments=VALID).console.trusted_proxies
    assert from_environment == (ip_network("::1"), ip_network("10.0.0.0/24"))
    assert _load(assignments=VALID).console.trusted_proxies == ()
    printed = tmp_path / "printed.toml"
    printed.write_text(_printed(_load(file=file, assignments=VALID), SENDER_PREFIX))
    assert _load(file=printed).console.trusted_proxies == from_file


@pytest.mark.parametrize(
    "value",
    [
        "proxy.hospital.local",  # a name: it may resolve to anything
        "10.0.0.5/24",  # one address, or its network? Refused, not widened
        "127.0.0.1, 300.1.2.3",
        "0.0.0.0/0",  # every address: anyone could claim to be anyone
        "10.0.0.5, ::/0",
    ],
)
def test_trusted_proxies_that_are_not_addresses_stop_the_start(value: str) -> None:
    with pytest.raises(SettingInvalid) as refused:
        _load(assignments=(*VALID, f"console.trusted_proxies={value}"))
    assert str(refused.value).startswith(
        "console.trusted_proxies: expected addresses or networks, not one of every address "
        "(0.0.0.0/0, ::/0), e.g."
    )
    assert str(refused.value).endswith("(from --set)")


def test_the_network_may_be_served_over_https() -> None:
    behind_proxy = _load(
        assignments=(*VALID, "console.listen=0.0.0.0:8760", "console.public_url=https://er.local")
    )
    assert behind_proxy.console.https
    direct = _load(
        assignments=(
            *VALID,
            "console.listen=10.1.2.3:8443",
            "console.tls_certificate=/etc/cert.pem",
            "console.tls_key=/etc/key.pem",
        )
    )
    assert direct.console.https
    assert not _load(assignments=VALID).console.https


def test_stow_credential_needs_a_url() -> None:
    with pytest.raises(SettingInvalid, match=r"^stow\.credential_file: is set, but stow\.url"):
        _load(
            ReceiverSettings,
            RECEIVER_PREFIX,
            assignments=(*VALID, "stow.credential_file=/etc/stow.token"),
        )


def test_replaced_changes_one_setting() -> None:
    settings = replaced(_load(assignments=VALID), "console.listen", HostPort("127.0.0.1", 1))
    assert settings.console.listen == HostPort("127.0.0.1", 1)
    assert settings.relay.url == "https://relay.example"


@pytest.mark.parametrize(
    ("text", "loopback"),
    [("127.0.0.1:1", True), ("[::1]:1", True), ("localhost:1", True), ("0.0.0.0:1", False)],
)
def test_loopback_addresses(text: str, loopback: bool) -> None:
    assert Listen().from_text(text).is_loopback is loopback


def test_the_trauma_console_imports_with_the_settings_pacs_and_stow(tmp_path: Path) -> None:
    """The console's imports use what `[pacs]` and `[stow]` say: several associations, and
    STOW-RS when a URL is set (the PACS still answers the identity checks)."""
    from receiving_site.cli import RECEIVER
    from receiving_site.console import _request
    from receiving_site.settings import ReceiverSettings
    from site_agent.settings import load

    credential = tmp_path / "credential"
    credential.write_text("county-trauma-credential\n")
    credential.chmod(0o600)
    settings = load(
        ReceiverSettings,
        "TRAUMA_RELAY_RECEIVER",
        file=None,
        assignments=[
            "relay.url=https://relay.example",
            f"relay.credential_file={credential}",
            "pacs.host=pacs.example",
            "pacs.associations=6",
            "stow.url=https://pacs.example/dicom-web",
        ],
        check=True,
    )
    request, unready = _request(settings, RECEIVER.credential(settings))
    assert unready == []
    assert request.associations == 6
    assert request.stow is not None
    assert request.stow.url == "https://pacs.example/dicom-web"
    assert request.pacs is not None
