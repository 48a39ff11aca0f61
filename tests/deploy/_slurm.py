"""A real single-node SLURM cluster for the tests (Debian's slurm-wlm and munge, as root).

Everything lives in a temporary folder; clients find it through ``SLURM_CONF``. The
daemons started here are stopped here (munge only if it was not already running).
See ../shared/notes/slurm.md for what this sandbox needs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = "slurmctld slurmd slurm-client munge"
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo", "munged", "munge", "unmunge")
CPUS = 4  # more than the machine has (config_overrides): a driver job and two worker jobs fit


def unavailable_reason() -> str | None:
    """Why a SLURM cluster cannot be started here, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "SLURM daemons need root (slurmd runs jobs as their users); not root here"
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing:
        return f"SLURM packages not installed (missing {', '.join(missing)}): apt-get install {PACKAGES}"
    if not Path("/etc/munge/munge.key").exists():
        return "no /etc/munge/munge.key (reinstall the munge package)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@dataclass
class LocalSlurm:
    """Start with :meth:`start`, stop with :meth:`stop`; ``env`` points clients at it."""

    root: Path
    host: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    pids: dict = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def write_conf(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        memory_mb = 8000
        lines = {
            "ClusterName": "vbitest",
            "SlurmctldHost": f"{self.host}(127.0.0.1)",
            "SlurmctldPort": _free_port(),
            "SlurmdPort": _free_port(),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "MpiDefault": "none",
            "MailProg": "/bin/true",
            "ReturnToService": 2,
            "SlurmdParameters": "config_overrides",
            "KillWait": 5,
            "MinJobAge": 30,
            "StateSaveLocation": self.root / "state",
            "SlurmdSpoolDir": self.root / "spool",
            "SlurmctldPidFile": self.root / "slurmctld.pid",
            "SlurmdPidFile": self.root / "slurmd.pid",
            "SlurmctldLogFile": self.root / "log" / "slurmctld.log",
            "SlurmdLogFile": self.root / "log" / "slurmd.log",
        }
        text = "\n".join(f"{k}={v}" for k, v in lines.items())
        text += (
            f"\nNodeName={self.host} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={memory_mb} State=UNKNOWN"
            f"\nPartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP\n"
        )
        self.conf.write_text(text)

    def _munge_ok(self) -> bool:
        try:
            token = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
            return (
                token.returncode == 0
                and subprocess.run(["unmunge"], input=token.stdout, capture_output=True, timeout=5).returncode == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _start_munge(self) -> None:
        if self._munge_ok():
            return  # a munged is running already: use it, leave it
        for folder, mode in (("/run/munge", 0o755), ("/var/lib/munge", 0o700), ("/var/log/munge", 0o700)):
            Path(folder).mkdir(parents=True, exist_ok=True)
            os.chmod(folder, mode)
            shutil.chown(folder, "munge", "munge")
        proc = subprocess.Popen(
            ["setpriv", "--reuid=munge", "--regid=munge", "--clear-groups", _which("munged"), "--foreground"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pids["munged"] = proc
        self._wait(self._munge_ok, 15, "munged did not start")

    def _wait(self, ready, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            for name, proc in self.pids.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}); {self.logs()}")
            time.sleep(0.2)
        raise RuntimeError(f"{message}; {self.logs()}")

    def logs(self) -> str:
        texts = [f"{p.name}:\n{p.read_text()[-2000:]}" for p in sorted((self.root / "log").glob("*.log"))]
        return "\n".join(texts) or "no logs"

    def start(self) -> "LocalSlurm":
        self.write_conf()
        self._start_munge()
        with open(self.root / "log" / "daemons.out", "ab") as log:  # the daemons keep their own descriptors
            self.pids["slurmctld"] = subprocess.Popen(
                [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)], env=self.env, stdout=log, stderr=log
            )
            self._wait(lambda: "UP" in self.run("scontrol", "ping", check=False), 30, "slurmctld did not answer")
            self.pids["slurmd"] = subprocess.Popen(
                [_which("slurmd"), "-D", "-N", self.host, "-f", str(self.conf)], env=self.env, stdout=log, stderr=log
            )

        def node_idle() -> bool:
            state = self.run("sinfo", "-h", "-N", "-o", "%T", check=False).strip()
            if state.startswith(("down", "drain")):
                self.run("scontrol", "update", f"NodeName={self.host}", "State=RESUME", check=False)
            return state.startswith("idle")

        self._wait(node_idle, 45, "the node did not become idle")
        return self

    def job_ids(self) -> list[str]:
        return self.run("squeue", "-h", "-o", "%i", check=False).split()

    def stop(self) -> None:
        if "slurmctld" in self.pids:
            self.run("scancel", "--full", "-u", "root", check=False)
            deadline = time.monotonic() + 15
            while self.job_ids() and time.monotonic() < deadline:
                time.sleep(0.3)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.pids.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
