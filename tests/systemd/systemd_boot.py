"""A real systemd 252 as PID 1 of throwaway namespaces, with runner installed in it.

How (see FIELD-NOTES, "A real systemd on these machines"): in a private mount
namespace, an ``overlay`` with the host's ``/`` as its lower layer and a tmpfs
as its upper layer, so nothing the boot writes reaches the host; the project
is installed into it as systemd/README.md says; then ``unshare --pid --fork
--net --uts --ipc --cgroup --mount`` and, inside, proc, a read-only sysfs,
cgroup2, a minimal ``/dev`` and ``/run`` are mounted, ``pivot_root`` moves
into the overlay and ``/lib/systemd/systemd`` is exec'd with ``container=``
set. Commands run inside through ``nsenter``.

Never on the host's own ``/``: at boot systemd empties ``/tmp`` and starts
every enabled service. Inside the overlay every unit the image enables is
disabled, so the boot starts only systemd's own basics.

Teardown does not depend on the tests passing: SIGKILL to the namespace's
PID 1 kills every process in the PID namespace (the kernel does it), which
drops the mount namespaces and with them the overlay and its tmpfs; the
cgroup made for the boot is then killed (``cgroup.kill``) and removed.

Needs root, util-linux's ``unshare``/``nsenter``, overlayfs and cgroup2.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from helpers import wait_until

SYSTEMD = Path("/lib/systemd/systemd")
PROJECT = Path(__file__).resolve().parents[2]
#: The checkout's systemd/ folder, as copied into the machine before it boots
#: (the checkout itself may be under /tmp, which the machine mounts a tmpfs over).
UNITS = "/opt/runner/checkout-systemd"
#: Where systemd/README.md installs runner.
VENV = "/opt/runner/venv"
PR_SET_PDEATHSIG = 1
#: Host devices bound into the machine's /dev (systemd and the services need no others).
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def missing_prerequisites() -> str | None:
    """Why a real systemd cannot be booted here, or None when it can."""
    if os.geteuid() != 0:
        return "booting systemd in namespaces needs root"
    if not SYSTEMD.is_file():
        return f"{SYSTEMD} is missing (Debian: apt-get install systemd)"
    for tool in ("unshare", "nsenter", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (Debian: apt-get install util-linux coreutils)"
    if not Path("/usr/bin/python3").is_file():
        return "/usr/bin/python3 is missing (the README installs runner with Debian's python3)"
    version = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if version != [str(n) for n in sys.version_info[:2]]:
        # The machine's venv borrows this environment's compiled dependencies.
        return f"/usr/bin/python3 is {'.'.join(version)}, the tests run {sys.version_info[:2]}"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs"
    if cgroup2_mount() is None:
        return "no cgroup2 (unified) hierarchy is mounted"
    return None


def cgroup2_mount() -> Path | None:
    """Where the unified cgroup hierarchy is mounted (``/sys/fs/cgroup`` or, on hybrid
    hosts, ``/sys/fs/cgroup/unified``)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
            return Path(fields[0].split()[4])
    return None


def own_cgroup() -> Path:
    """This process's cgroup in the unified hierarchy, as a path under its mount."""
    mount = cgroup2_mount()
    assert mount is not None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return mount / line[3:].lstrip("/")
    raise AssertionError("this process is in no cgroup2 group")


# --------------------------------------------------------------------------- the install


def build_wheel(directory: Path) -> Path:
    """A wheel of this checkout, built from a copy (the work tree gets no build/)."""
    source = directory / "src-copy"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, source / name)
    shutil.copytree(
        PROJECT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    wheels = directory / "wheels"
    subprocess.run(
        [
            sys.executable,
            *("-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"),
            *("--disable-pip-version-check", "--wheel-dir", str(wheels), str(source)),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("runner_daemon-*.whl")
    return wheel


def dependency_paths(distribution: str = "runner-daemon") -> list[Path]:
    """Every top-level file or folder of ``distribution``'s dependencies (recursively,
    without extras) as installed in this environment."""
    seen: set[str] = set()
    paths: set[Path] = set()
    todo = [distribution]
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        for spec in dist.requires or ():
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = req.name.lower().replace("_", "-")
            if name in seen:
                continue
            seen.add(name)
            todo.append(name)
            dep = importlib.metadata.distribution(name)
            for file in dep.files or ():
                top = file.parts[0]
                if top != ".." and not top.endswith(".pth"):
                    paths.add(Path(str(dep.locate_file(top))))
    return sorted(paths)


# --------------------------------------------------------------------------- the boot

# Runs as root in a private mount namespace ($1: scratch dir, $2: the wheel,
# $3: the dependencies, "INDEX NAME" per line, INDEX into the folders listed in
# $PARENTS). Ends by exec'ing the inner unshare.
_OUTER = r"""
set -eu
W=$1 WHEEL=$2 DEPS=$3 CGROUP=$4
R=$W/root
mount -t tmpfs -o mode=0755 runner-systemd-test "$W"
mkdir "$W/upper" "$W/work" "$R"
mount -t overlay runner-systemd-test -o "lowerdir=/,upperdir=$W/upper,workdir=$W/work" "$R"

# Nothing the image enables starts (nginx, postgresql, timers, getty, ...).
for wants in "$R"/etc/systemd/system/*.wants; do rm -rf "$wants"; done
ln -sf /lib/systemd/system/multi-user.target "$R/etc/systemd/system/default.target"
for unit in systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
        systemd-timesyncd.service systemd-networkd.service systemd-resolved.service \
        systemd-pstore.service systemd-binfmt.service systemd-modules-load.service \
        systemd-firstboot.service systemd-random-seed.service systemd-update-utmp.service \
        console-getty.service getty@.service serial-getty@.service \
        cron.service nginx.service postgresql.service ssh.service; do
    ln -sf /dev/null "$R/etc/systemd/system/$unit"
done
echo runner-systemd-test > "$R/etc/hostname"
rm -f "$R/etc/machine-id"; : > "$R/etc/machine-id"

# runner, as systemd/README.md installs it: a venv of Debian's python3 in
# /opt/runner/venv, then pip install of the project. Offline: the project
# is a wheel built from this checkout, and its dependencies are the ones
# this test environment already has (linked, not downloaded).
rm -rf "$R/opt/runner"
chroot "$R" /usr/bin/python3 -m venv --without-pip /opt/runner/venv
mkdir -p "$R/tmp/runner-wheel"
cp "$WHEEL" "$R/tmp/runner-wheel/"
chroot "$R" "$PIP_PYTHON" -m pip --python /opt/runner/venv/bin/python install --quiet \
    --no-deps --no-index --disable-pip-version-check "/tmp/runner-wheel/${WHEEL##*/}"
rm -rf "$R/tmp/runner-wheel"
SITE=$(chroot "$R" /opt/runner/venv/bin/python -c \
    'import sysconfig; print(sysconfig.get_path("purelib"))')
# The folders they are in are bound read-only under /opt/runner/host, and
# linked from there: a link to the host path would break when it is under
# /tmp, which the machine's systemd mounts a tmpfs over (a CI clone in /tmp).
mkdir -p "$R/opt/runner/deps"
i=0
while IFS= read -r parent; do
    mkdir -p "$R/opt/runner/host/$i"
    mount --bind "$parent" "$R/opt/runner/host/$i"
    mount -o remount,bind,ro "$R/opt/runner/host/$i"
    i=$((i + 1))
done < "$PARENTS"
while read -r i name; do ln -s "/opt/runner/host/$i/$name" "$R/opt/runner/deps/"; done < "$DEPS"
echo /opt/runner/deps > "$R$SITE/runner-test-deps.pth"
cp -r "$PROJECT_UNITS" "$R/opt/runner/checkout-systemd"

# Its own cgroup, so that the machine's cgroup namespace starts empty and
# teardown can kill whatever is left in it.
echo $$ > "$CGROUP/cgroup.procs"
# --kill-child: if this process dies (the test run was killed: it has
# PR_SET_PDEATHSIG), the machine's PID 1 and with it the machine go too.
exec unshare --pid --fork --kill-child=SIGKILL --net --uts --ipc --cgroup --mount \
    --propagation private /bin/sh -c "$INNER" inner "$R"
"""

# PID 1 of the new PID namespace ($1: the overlay). Ends by exec'ing systemd.
_INNER = r"""
set -eu
R=$1
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid runner-systemd-test "$R/dev"
for dev in $DEVICES; do : > "$R/dev/$dev"; mount --bind "/dev/$dev" "$R/dev/$dev"; done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev runner-systemd-test "$R/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev runner-systemd-test "$R/run"
mkdir -p "$R/oldroot"
cd "$R"
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot
exec env -i container=runner-systemd-test PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd
"""


class Machine:
    """A booted systemd; ``run`` executes a command inside it as root."""

    def __init__(self, pid: int, log: Path) -> None:
        #: PID 1 of the machine, as seen from the host.
        self.pid = pid
        #: systemd's own console output (for failure messages).
        self.log = log

    def run(
        self,
        *cmd: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the machine (all its namespaces, its root) as root."""
        prefix = ["nsenter", "-t", str(self.pid), "-m", "-p", "-n", "-u", "-i", "-C", "-r", "-w"]
        environ = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **(env or {})}
        proc = subprocess.run(
            [*prefix, "env", "-i", *(f"{k}={v}" for k, v in environ.items()), *cmd],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"in the machine: {shlex.join(cmd)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--no-pager", "--no-ask-password", *args, check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show -p PROP`` as a dict."""
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        self.run("install", "-D", "-m", mode, "/dev/stdin", path, input=text)

    def journal(self, *args: str) -> list[dict[str, Any]]:
        """``journalctl -o json ARGS`` as records."""
        out = self.run("journalctl", "--no-pager", "-o", "json", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
    ) -> Any:
        """Poll ``predicate`` until it returns something truthy; fail after ``timeout``
        (each poll runs commands in the machine: every 0.1 s by default)."""
        return wait_until(predicate, timeout, what, interval)


@contextmanager
def booted_systemd(scratch: Path, boot_timeout: float = 60) -> Iterator[Machine]:
    """Boot a machine with runner installed in ``/opt/runner/venv``; always torn down."""
    scratch.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(scratch / "build")
    paths = dependency_paths()
    parents = sorted({str(p.parent) for p in paths})
    parents_file = scratch / "parents.txt"
    parents_file.write_text("".join(f"{p}\n" for p in parents))
    deps = scratch / "deps.txt"
    deps.write_text("".join(f"{parents.index(str(p.parent))} {p.name}\n" for p in paths))
    overlay = scratch / "overlay"
    overlay.mkdir()
    console = scratch / "console.log"
    _remove_stale_cgroups()
    cgroup = own_cgroup() / f"runner-systemd-test-{os.getpid()}-{time.monotonic_ns()}"
    cgroup.mkdir()
    launcher = None
    try:
        with console.open("wb") as out:
            launcher = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "/bin/sh",
                    "-c",
                    _OUTER,
                    "outer",
                    str(overlay),
                    str(wheel),
                    str(deps),
                    str(cgroup),
                ],
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={
                    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                    "INNER": _INNER,
                    "DEVICES": " ".join(DEVICES),
                    "PIP_PYTHON": sys.executable,
                    "PARENTS": str(parents_file),
                    "PROJECT_UNITS": str(PROJECT / "systemd"),
                },
            )
        machine = Machine(_wait_for_pid1(launcher, console, boot_timeout), console)
        _wait_for_boot(machine, launcher, boot_timeout)
        yield machine
    finally:
        _teardown(launcher, cgroup)


def _die_with_parent() -> None:
    """In the launcher before exec: SIGKILL it when the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def _pid1(launcher: subprocess.Popen[bytes]) -> int | None:
    """The host PID of the machine's systemd: the inner unshare's only child, once
    that child runs systemd."""
    try:
        children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
        if len(children) == 1:
            pid = int(children[0])
            if Path(f"/proc/{pid}/exe").resolve() == SYSTEMD.resolve():
                return pid
    except (OSError, ValueError):
        pass
    return None


def _failed(launcher: subprocess.Popen[bytes], console: Path, what: str) -> AssertionError:
    return AssertionError(
        f"{what} (launcher exit {launcher.poll()}); console:\n"
        + console.read_text(errors="replace")[-4000:]
    )


def _wait_for_pid1(launcher: subprocess.Popen[bytes], console: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (pid := _pid1(launcher)) is None:
        if launcher.poll() is not None:
            raise _failed(launcher, console, "the machine did not start")
        if time.monotonic() > deadline:
            raise _failed(launcher, console, f"systemd was not running after {timeout}s")
        time.sleep(0.05)
    return pid


def _wait_for_boot(machine: Machine, launcher: subprocess.Popen[bytes], timeout: float) -> None:
    # systemctl needs systemd's private socket, which appears early in the boot.
    deadline = time.monotonic() + timeout
    while machine.run("test", "-S", "/run/systemd/private", check=False).returncode != 0:
        if launcher.poll() is not None or time.monotonic() > deadline:
            raise _failed(launcher, machine.log, "systemd did not open /run/systemd/private")
        time.sleep(0.05)
    # "is-system-running --wait" returns once the boot is done (running or degraded).
    proc = machine.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout)
    state = proc.stdout.strip()
    if state not in ("running", "degraded"):
        raise _failed(launcher, machine.log, f"boot ended {state!r}: {proc.stderr}")
    if state == "degraded":
        failed = machine.systemctl("--failed", "--plain", "--no-legend").stdout
        raise _failed(launcher, machine.log, f"boot degraded; failed units:\n{failed}")


def _teardown(launcher: subprocess.Popen[bytes] | None, cgroup: Path) -> None:
    if launcher is not None:
        pid = _pid1(launcher)
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # the kernel kills the whole PID namespace
        if launcher.poll() is None:
            with suppress(subprocess.TimeoutExpired):
                launcher.wait(timeout=10)
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    if cgroup.is_dir():
        with suppress(OSError):
            (cgroup / "cgroup.kill").write_text("1")
        _remove_cgroup(cgroup)


def _remove_stale_cgroups() -> None:
    """Remove the cgroups of earlier runs that were killed before their teardown."""
    for stale in own_cgroup().glob("runner-systemd-test-*"):
        owner = stale.name.split("-")[3]
        if not Path(f"/proc/{owner}").exists():
            with suppress(OSError):
                (stale / "cgroup.kill").write_text("1")
            with suppress(OSError):
                _remove_cgroup(stale, timeout=2)


def _remove_cgroup(cgroup: Path, timeout: float = 10) -> None:
    """rmdir a cgroup tree bottom-up once its processes have gone."""
    deadline = time.monotonic() + timeout
    for path in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        _rmdir_when_empty(path, deadline)
    _rmdir_when_empty(cgroup, deadline)


def _rmdir_when_empty(path: Path, deadline: float) -> None:
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
