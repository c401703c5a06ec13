"""A one-node SLURM cluster for the tests: munged, slurmctld and slurmd in a directory of their own.

Debian's ``slurm-wlm`` and ``munge`` packages (``.ci/run`` installs them), run as root, without
systemd; see ``../shared/notes/local-slurm.md`` for how this setup was found. The munge key and
socket, ``slurm.conf``, spool and logs live in one temporary directory, on free ports; clients find
the cluster through ``SLURM_CONF`` (:meth:`SlurmCluster.env`). One file goes outside it: a copy of
``slurm.conf`` at ``/etc/slurm/slurm.conf``, because snakemake-executor-plugin-slurm-jobstep runs
each job's ``srun`` with every ``SLURM_*`` variable but the job's identity removed, so ``srun`` reads
the default path. An existing ``/etc/slurm/slurm.conf`` that this helper did not write (a real
installation) is never overwritten: the cluster then does not start, saying so. The daemons run in
the foreground as children of this process and are stopped by their process ids; the copy is removed.

    with SlurmCluster() as cluster:
        subprocess.run(["sbatch", ...], env=cluster.env())
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "scontrol")
PACKAGES = "slurm-wlm munge"
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
OURS = "# written by tests/slurm_cluster.py of the M3PO suite; removed when its cluster stops\n"


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be started here; the message says why and what to do."""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise SlurmUnavailable("cannot read MemTotal from /proc/meminfo")


class SlurmCluster:
    """One node (this machine), one partition ``main``; start with :meth:`start`, stop with :meth:`stop`.

    :param cpus: CPUs the node offers (default: all of this machine's)
    :param memory_mb: memory the node offers (default: 80% of this machine's)
    :param partition: the partition's name
    """

    def __init__(
        self, cpus: int | None = None, memory_mb: int | None = None, partition: str = "main"
    ) -> None:
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb = memory_mb or int(_memory_mb() * 0.8)
        self.partition = partition
        self.root: Path | None = None
        self.system_conf_written = False
        self.processes: dict[str, subprocess.Popen] = {}

    # ----------------------------------------------------------------------------------- checks
    @staticmethod
    def check_prerequisites() -> None:
        """Raise :class:`SlurmUnavailable` naming what is missing (root, programs)."""
        if os.geteuid() != 0:
            raise SlurmUnavailable(
                "starting a SLURM cluster needs root (slurmd runs jobs as their user; munged as 'munge')"
            )
        missing = [p for p in (*DAEMONS, *CLIENTS, "munge", "unmunge") if shutil.which(p) is None]
        if missing:
            raise SlurmUnavailable(
                f"programs missing: {', '.join(missing)}; install them with "
                f"`apt-get install -y {PACKAGES}` (Debian) or run .ci/run, which does"
            )
        try:
            pwd.getpwnam("munge")
        except KeyError as err:
            raise SlurmUnavailable("no 'munge' user: install Debian's munge package") from err

    def env(self) -> dict[str, str]:
        """This process's environment, pointing SLURM's clients at this cluster."""
        if self.root is None:
            raise RuntimeError("the cluster is not started")
        return {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf")}

    # ---------------------------------------------------------------------------------- start
    def start(self, timeout: float = 60.0) -> SlurmCluster:
        """Start munged, slurmctld and slurmd; return once the node is idle."""
        self.check_prerequisites()
        self.root = Path(tempfile.mkdtemp(prefix="m3po-slurm-"))
        self.root.chmod(0o755)  # munged (user munge) reaches its own folder through it
        try:
            self._start_munge()
            self._write_slurm_conf()
            conf = str(self.root / "slurm.conf")
            self._spawn("slurmctld", ["slurmctld", "-D", "-f", conf])
            self._spawn("slurmd", ["slurmd", "-D", "-f", conf, "-N", self.node])
            self._wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, command: list[str], user: str | None = None) -> None:
        log = (self.root / f"{name}.out").open("w")
        self.processes[name] = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )

    def _start_munge(self) -> None:
        folder = self.root / "munge"
        folder.mkdir()
        folder.chmod(0o755)  # munged: clients must reach its socket
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        entry = pwd.getpwnam("munge")
        for path in (folder, key):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.munge_socket = folder / "munge.socket"
        self._spawn(
            "munged",
            [
                "munged", "--foreground", f"--socket={self.munge_socket}", f"--key-file={key}",
                f"--pid-file={folder / 'munged.pid'}", f"--seed-file={folder / 'munged.seed'}",
                f"--log-file={folder / 'munged.log'}",
            ],
            user="munge",
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self._check_alive()
            probe = subprocess.run(
                f"munge -n -S {self.munge_socket} | unmunge -S {self.munge_socket}",
                shell=True,
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0 and "Success" in probe.stdout:
                return
            time.sleep(0.2)
        raise SlurmUnavailable(f"munged does not answer: {probe.stdout}{probe.stderr}{self._logs()}")

    def _write_slurm_conf(self) -> None:
        self.node = socket.gethostname()
        ctld_port, slurmd_port = _free_ports(2)
        for sub in ("state", "spool"):
            (self.root / sub).mkdir()
        conf = f"""\
ClusterName=m3potest
SlurmctldHost={self.node}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={self.root / "state"}
SlurmdSpoolDir={self.root / "spool"}
SlurmctldPidFile={self.root / "slurmctld.pid"}
SlurmdPidFile={self.root / "slurmd.pid"}
SlurmctldLogFile={self.root / "slurmctld.log"}
SlurmdLogFile={self.root / "slurmd.log"}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
SchedulerType=sched/backfill
MpiDefault=none
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
"""
        (self.root / "slurm.conf").write_text(conf)
        if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text(errors="replace").startswith(OURS):
            raise SlurmUnavailable(
                f"{SYSTEM_CONF} exists and was not written by this helper (a real SLURM installation?); "
                "the test cluster needs that path for the jobs' srun and does not overwrite it"
            )
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.write_text(OURS + conf)
        self.system_conf_written = True

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise SlurmUnavailable(f"{name} exited with status {proc.returncode}{self._logs()}")

    def _logs(self) -> str:
        parts = []
        for path in sorted(self.root.glob("*.out")) + sorted(self.root.glob("*.log")):
            text = path.read_text(errors="replace").strip()
            if text:
                parts.append(f"\n--- {path.name} (last lines)\n" + "\n".join(text.splitlines()[-15:]))
        return "".join(parts)

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            self._check_alive()
            done = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, env=self.env()
            )
            state = (done.stdout + done.stderr).strip()
            if done.returncode == 0 and state == "idle":
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"node not idle after {timeout:.0f} s (sinfo: {state!r}){self._logs()}")

    # ----------------------------------------------------------------------------------- stop
    def stop(self, timeout: float = 20.0) -> None:
        """Cancel the jobs still queued or running, then stop the daemons this object started, by
        process id (slurmd first, munged last)."""
        ctld = self.processes.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            subprocess.run(
                ["scancel", "--user", pwd.getpwuid(os.getuid()).pw_name], env=self.env(), timeout=30
            )
        for name in reversed(DAEMONS):
            proc = self.processes.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        if (
            self.system_conf_written
            and SYSTEM_CONF.exists()
            and SYSTEM_CONF.read_text(errors="replace").startswith(OURS)
        ):
            SYSTEM_CONF.unlink()
        self.system_conf_written = False
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
