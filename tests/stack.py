"""Starting and stopping local_test/run_stack.sh (serve + gateway.py + web/) for test_stack.py and test_web.py."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

REPOSITORY = Path(__file__).resolve().parent.parent
RUN_STACK = REPOSITORY / "local_test" / "run_stack.sh"
GATEWAY = REPOSITORY / "local_test" / "gateway.py"
# Reviews both test files send: the bundled model is sure of each.
POSITIVE = "A superb, moving film. The cast is wonderful and I loved every minute of it."
NEGATIVE = "An awful, boring mess. Terrible acting, a dull plot; the worst film of the year."
START_SECONDS = 60.0  # the bundled model loads in about 2 s here; a cold, busy machine gets ample margin


def port_is_free(port: int) -> bool:
    """True when a new server could listen on `port` (SO_REUSEADDR, as both servers use: TIME_WAIT does not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {seconds} s")
        time.sleep(0.05)


@dataclass
class Stack:
    """A running run_stack.sh (or a lone gateway.py): its process, its page's URL and its combined output."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def serve_port(self) -> int:
        match = re.search(r"starting serve .* on http://127\.0\.0\.1:(\d+)", self.output())
        assert match, self.output()
        return int(match.group(1))

    def gunicorn_master(self) -> int:
        match = re.search(r"Listening at: (?:http://|unix:)\S+ \((\d+)\)", self.output())
        assert match, self.output()
        return int(match.group(1))


def launch(command: list[str], port: int, workdir: Path) -> Stack:
    """Start `command` in a new session (its own process group, like a job in a terminal), output to a log file."""
    log = workdir / f"stack-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=REPOSITORY,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            preexec_fn=default_signals,
        )
    return Stack(process, port, log)


def default_signals() -> None:
    """Ctrl+C and SIGHUP as a terminal's job gets them. A test run started in the background (or under
    nohup) inherits them ignored, and bash cannot trap a signal ignored when it started."""
    for number in (signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def wait_for_page(stack: Stack) -> None:
    """Poll the page until it answers 200, failing at once (with the output) if the script exits first."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise RuntimeError(f"exited with status {stack.process.returncode} before serving:\n{stack.output()}")
        try:
            with urllib.request.urlopen(f"{stack.url}/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    stop(stack)
    raise TimeoutError(f"{stack.url}/ did not answer within {START_SECONDS} s:\n{stack.output()}")


def start_stack(workdir: Path) -> Stack:
    """local_test/run_stack.sh on a free port, ready to serve the page and POST /predict."""
    port = free_port()
    stack = launch([str(RUN_STACK), "--port", str(port)], port, workdir)
    wait_for_page(stack)
    return stack


def start_gateway(workdir: Path, serve_url: str) -> Stack:
    """gateway.py alone, its relay pointed at `serve_url` (e.g. a port where nothing listens)."""
    port = free_port()
    command = [sys.executable, str(GATEWAY), "--port", str(port), "--serve-url", serve_url]
    stack = launch(command, port, workdir)
    wait_for_page(stack)
    return stack


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, whatever process group it moved to (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name in field 2 may hold spaces and parentheses: split after its closing ")".
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent and child not in found]
        found.update(children)
        frontier.extend(children)
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def interrupt(stack: Stack) -> None:
    """What Ctrl+C in a terminal does: SIGINT to the script's whole (foreground) process group."""
    os.killpg(stack.process.pid, signal.SIGINT)


def stop(stack: Stack, seconds: float = 20.0) -> int:
    """Ctrl+C the stack and wait for it; whatever is left after `seconds` is killed. Returns the exit status."""
    leftovers = descendants(stack.process.pid)
    if stack.process.poll() is None:
        interrupt(stack)
    try:
        status = stack.process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        status = stack.process.wait()
    for pid in leftovers:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    return status
