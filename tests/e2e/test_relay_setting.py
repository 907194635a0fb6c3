"""Acceptance, at the command line: the relay's address is set once, not typed each time.
`TRAUMA_RELAY_URL`, or `relay = "..."` in `config.toml` in the site's state folder (or the file
`--config` names), serves `push`, `redeem` and the site subcommands when `--relay` is absent;
`--relay` still wins; with none, the error names both ways."""

from __future__ import annotations

from pathlib import Path

from peers.ports import free_port

from e2e.harness import E2ERelay, run_cli
from sending_site.synthetic import make_ct_study


def _without_relay(args: list[str]) -> list[str]:
    at = args.index("--relay")
    return args[:at] + args[at + 2 :]


def _dead_relay() -> str:
    return f"http://127.0.0.1:{free_port()}"


def _state_with_relay(folder: Path, url: str) -> Path:
    """A state folder whose config.toml names `url` as the relay."""
    folder.mkdir()
    (folder / "config.toml").write_text(f'relay = "{url}"\n')
    return folder


def test_a_config_file_in_the_state_folder_and_the_environment_serve_both_sites(
    relay: E2ERelay, tmp_path: Path
) -> None:
    make_ct_study(tmp_path / "study", 2, seed=401)
    er_state = _state_with_relay(tmp_path / "er-state", relay.url)
    push = _without_relay(relay.push_args([tmp_path / "study"], state=er_state, extra=["--json"]))
    pushed = run_cli(push, cwd=tmp_path, credential=relay.sender_credential).ok().json()
    assert pushed["authorization_url"].startswith(relay.url)
    relay.authorize(pushed)

    redeem = _without_relay(relay.redeem_args(state=tmp_path / "tc-state", out=tmp_path / "in"))
    done = run_cli(
        redeem,
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin=pushed["code"] + "\n",
        env={"TRAUMA_RELAY_URL": relay.url},
    ).ok()
    assert done.json()["instances"] == 2


def test_relay_wins_over_the_environment_and_the_config_file(
    relay: E2ERelay, tmp_path: Path
) -> None:
    make_ct_study(tmp_path / "study", 1, seed=402)
    er_state = _state_with_relay(tmp_path / "er-state", _dead_relay())
    push = relay.push_args([tmp_path / "study"], state=er_state, extra=["--json"])
    pushed = run_cli(
        push,
        cwd=tmp_path,
        credential=relay.sender_credential,
        env={"TRAUMA_RELAY_URL": _dead_relay()},
    ).ok()
    assert pushed.json()["instances"] == 1


def test_the_environment_wins_over_the_config_file(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 1, seed=403)
    settings = tmp_path / "elsewhere.toml"
    settings.write_text(f'# the site\'s settings\nrelay = "{_dead_relay()}"\n')
    push = _without_relay(
        relay.push_args(
            [tmp_path / "study"],
            state=tmp_path / "er-state",
            extra=["--json", "--config", str(settings)],
        )
    )
    run_cli(
        push, cwd=tmp_path, credential=relay.sender_credential, env={"TRAUMA_RELAY_URL": relay.url}
    ).ok()

    # And --config alone points at the relay too.
    settings.write_text(f'relay = "{relay.url}"\n')
    make_ct_study(tmp_path / "other", 1, seed=404)
    push[push.index(str(tmp_path / "study"))] = str(tmp_path / "other")
    run_cli(push, cwd=tmp_path, credential=relay.sender_credential).ok()


def test_without_any_setting_the_error_names_both_ways(relay: E2ERelay, tmp_path: Path) -> None:
    state = tmp_path / "tc-state"
    for args, credential in (
        (
            _without_relay(relay.push_args([tmp_path], state=state, extra=["--json"])),
            relay.sender_credential,
        ),
        (_without_relay(relay.redeem_args(state=state, out=tmp_path)), relay.receiver_credential),
    ):
        run = run_cli(args, cwd=tmp_path, credential=credential, stdin="x\n").failed()
        assert run.returncode == 2
        assert "No relay address was given" in run.message
        assert "--relay URL" in run.message
        assert "TRAUMA_RELAY_URL" in run.message
        assert f'relay = "https://relay.example" into {state / "config.toml"}' in run.message


def test_a_broken_settings_file_is_named_with_what_is_wrong(
    relay: E2ERelay, tmp_path: Path
) -> None:
    state = tmp_path / "tc-state"
    state.mkdir()
    (state / "config.toml").write_text("relay = https://no-quotes\n")
    args = _without_relay(relay.redeem_args(state=state, out=tmp_path / "in"))
    run = run_cli(args, cwd=tmp_path, credential=relay.receiver_credential, stdin="x\n").failed()
    assert f"The settings file {state / 'config.toml'} is not valid TOML" in run.message

    (state / "config.toml").write_text("relay = 8750\n")
    run = run_cli(args, cwd=tmp_path, credential=relay.receiver_credential, stdin="x\n").failed()
    assert "relay must be text in quotes" in run.message

    missing = tmp_path / "missing.toml"
    run = run_cli(
        [*args, "--config", str(missing)],
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin="x\n",
    ).failed()
    assert f"The settings file {missing} does not exist." in run.message
