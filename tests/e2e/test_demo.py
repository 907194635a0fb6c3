"""`trauma-relay demo` ends like the rest of it reads: the delivery in words and local time, and
the real commands to run next, which must still be commands `trauma-relay` accepts."""

from __future__ import annotations

import datetime
import re
import shlex
import subprocess
from pathlib import Path

from e2e.harness import cli_environment, trauma_relay_executable
from trauma_relay.cli import build_parser


def _jst(moment: datetime.datetime) -> str:
    return f"{moment.astimezone(datetime.timezone(datetime.timedelta(hours=9))):%Y-%m-%d %H:%M}"


def _next_commands(stdout: str) -> list[list[str]]:
    """The `trauma-relay ...` commands after "Done.", with continuation lines joined."""
    tail = stdout.split("\nDone.", 1)[1].replace("\\\n", " ")
    return [
        shlex.split(line.strip())
        for line in tail.splitlines()
        if line.strip().startswith("trauma-relay ")
    ]


def test_demo_ends_with_the_delivery_in_words_and_the_next_real_commands(tmp_path: Path) -> None:
    before = datetime.datetime.now(datetime.UTC)
    done = subprocess.run(
        [trauma_relay_executable(), "demo", "--instances", "2"],
        cwd=tmp_path,
        env={**cli_environment(None), "TZ": "Asia/Tokyo"},  # JST, UTC+9 all year
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    after = datetime.datetime.now(datetime.UTC)
    assert done.returncode == 0, done.stdout + done.stderr
    last_step = done.stdout.split("\n[7] ", 1)[1].split("\nDone.", 1)[0]

    delivered = re.search(
        r"Delivered (\d{4}-\d\d-\d\d \d\d:\d\d) JST: County Level I Trauma Center verified all "
        r"2 images and wrote them to a folder\.",
        last_step,
    )
    assert delivered, last_step
    assert delivered.group(1) in {_jst(before), _jst(after)}
    for raw in ("{", "}", "received_at", "'instances'", "receipt:"):
        assert raw not in last_step, last_step

    commands = _next_commands(done.stdout)
    assert [words[1] for words in commands] == ["relay", "site", "site", "push", "redeem"]
    parser = build_parser()
    for words in commands:
        args = parser.parse_args(words[1:])  # still what `trauma-relay` accepts
        assert callable(args.run)
    roles = {words[words.index("--role") + 1] for words in commands if words[1] == "site"}
    assert roles == {"sending", "receiving"}
    push = next(words for words in commands if words[1] == "push")
    assert push[push.index("--relay") + 1].startswith("https://")
