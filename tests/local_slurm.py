"""A real one-node SLURM cluster on 127.0.0.1 from Debian's packages, for the tests.

slurmctld + slurmd + slurmdbd with MariaDB, so that `sacct` and account checks behave as on
OSC; partitions carry OSC's names and the node has two placeholder GPUs (gres files /dev/null and
/dev/zero: jobs that ask for GPUs schedule, but see no GPU, on a machine with GPUs too).
Lmod (Debian's `lmod`) gives jobs the `module` command, as on OSC. Everything lives in one temp
folder and every daemon is stopped by its pid file. Needs root (as in CI).
See ../shared/notes/local-slurm.md for why each setting is there.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "mariadbd", "munged", "sacctmgr", "mariadb-install-db")
# Sourced by every non-interactive bash (BASH_ENV) to define `module`, as /etc/profile.d/lmod.sh does on a cluster.
LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")
GPU_FILES = ("/dev/null", "/dev/zero")  # placeholder devices, one per GPU
ETC_SLURM = Path("/etc/slurm")
MUNGE_PID = Path("/run/munge/munged.pid")
# One cluster per machine at a time: they share munge and the /etc/slurm links.
MACHINE_LOCK = Path("/run/lock/mlpipe-local-slurm.lock")
CLUSTER_NAME = "mlpipetest"
# OSC's partition names; the debug ones with OSC's one-hour cap.
PARTITIONS = {"cpu": "INFINITE", "gpu": "INFINITE", "gpudebug": "60", "debug-cpu": "60", "gpubackfill": "240"}


def missing_requirements() -> list[str]:
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if not LMOD_INIT.is_file():
        missing.append("lmod")
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise RuntimeError(f"local SLURM: timed out waiting for {what}")


@dataclass
class LocalSlurm:
    root: Path
    accounts: tuple[str, ...] = ("pas0001",)
    cpus: int = 8  # announced to SLURM (config_overrides): lets a job ask for a GPU's 4 cores on a 2-core machine
    memory_mb: int = 12000
    env: dict = field(default_factory=dict)
    _started_munge: bool = False
    _replaced_etc: list = field(default_factory=list)
    _mariadb: subprocess.Popen | None = None
    _lock: IO[str] | None = None

    @property
    def conf_dir(self) -> Path:
        return self.root / "etc"

    def start(self) -> LocalSlurm:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalSlurm:
        self._take_machine_lock()
        for name in ("etc", "state", "spool", "db", "log"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in ("mariadb", "slurmdbd", "slurmctld", "slurmd")}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf_dir / "slurm.conf")}
        self._start_munge()
        self._start_mariadb(ports["mariadb"])
        self._write_configs(ports)
        self._link_etc()
        self._run(["slurmdbd"])
        wait_until(lambda: self._quiet(["sacctmgr", "-n", "show", "cluster"]), 60, "slurmdbd")
        self._run(["sacctmgr", "-i", "add", "cluster", CLUSTER_NAME])
        for account in self.accounts:
            self._run(["sacctmgr", "-i", "add", "account", account, f"cluster={CLUSTER_NAME}"])
        self._run(
            [
                "sacctmgr",
                "-i",
                "add",
                "user",
                "root",
                f"account={','.join(self.accounts)}",
                f"defaultaccount={self.accounts[0]}",
                f"cluster={CLUSTER_NAME}",
            ]
        )
        self._run(["slurmctld"])
        self._run(["slurmd", "-N", "localhost"])
        wait_until(self._node_idle, 60, "the node to become idle")
        return self

    def stop(self) -> None:
        if self.running_daemons():
            # Jobs outlive slurmd (slurmstepd), so end them first.
            subprocess.run(["scancel", "--full", "--user=root"], env=self.env, capture_output=True)
            wait_until(lambda: not self.queue(), 60, "cancelled jobs to end")
        for name in ("slurmd", "slurmctld", "slurmdbd"):
            self._kill_pidfile(self.root / f"{name}.pid")
        if self._mariadb is not None:
            self._mariadb.terminate()
            self._mariadb.wait(30)
        if self._started_munge:
            self._kill_pidfile(MUNGE_PID)
        for link, backup in self._replaced_etc:
            link.unlink(missing_ok=True)
            if backup is not None:
                backup.rename(link)
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def running_daemons(self) -> list[str]:
        """Daemons of this cluster still alive (by pid file)."""
        alive = []
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadb"):
            pid_file = self.root / f"{name}.pid"
            if pid_file.exists() and _alive(int(pid_file.read_text().split()[0])):
                alive.append(name)
        return alive

    def queue(self) -> list[dict[str, str]]:
        """Jobs in the queue (pending or running), one row per array task: id, state and the comment the plugin
        gives each job."""
        result = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%k"], env=self.env, capture_output=True, text=True)
        return [
            dict(zip(("JobID", "State", "Comment"), line.split("|"))) for line in result.stdout.splitlines() if line
        ]

    def set_partition_state(self, partition: str, state: str) -> None:
        """UP, or DOWN: jobs are still accepted into the queue but none starts."""
        self._run(["scontrol", "update", f"PartitionName={partition}", f"State={state}"])

    def sacct(self, *fields: str) -> list[dict[str, str]]:
        """Every job (steps excluded) the accounting database knows, as dicts of ``fields``."""
        output = self._run(["sacct", "-a", "-X", "-n", "-P", "-S", "now-1day", "-o", ",".join(fields)])
        return [dict(zip(fields, line.split("|"))) for line in output.splitlines() if line]

    # -- pieces ---------------------------------------------------------------------------------
    def _take_machine_lock(self) -> None:
        MACHINE_LOCK.parent.mkdir(parents=True, exist_ok=True)
        lock = MACHINE_LOCK.open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise RuntimeError(f"local SLURM: another test cluster runs on this machine ({MACHINE_LOCK})") from None
        self._lock = lock

    def _start_munge(self) -> None:
        if MUNGE_PID.exists() and _alive(int(MUNGE_PID.read_text().split()[0])):
            return
        subprocess.run(["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"], check=True)
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
        self._started_munge = True

    def _start_mariadb(self, port: int) -> None:
        datadir, sock = self.root / "db", self.root / "mariadb.sock"
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        self._mariadb = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={datadir}",
                f"--socket={sock}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.root / 'mariadb.pid'}",
                "--user=root",
                f"--log-error={self.root / 'log' / 'mariadb.log'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        sql = ["mariadb", "--no-defaults", f"--socket={sock}", "-uroot"]
        wait_until(lambda: self._quiet([*sql, "-e", "select 1"]), 60, "mariadb")
        subprocess.run(
            [
                *sql,
                "-e",
                "CREATE DATABASE slurm_acct_db; "
                "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-test'; "
                "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';",
            ],
            check=True,
        )

    def _write_configs(self, ports: dict[str, int]) -> None:
        root = self.root
        gres = f"gpu:{len(GPU_FILES)}"
        partitions = "\n".join(
            f"PartitionName={name} Nodes=localhost MaxTime={max_time} State=UP{' Default=YES' if name == 'cpu' else ''}"
            for name, max_time in PARTITIONS.items()
        )
        (self.conf_dir / "slurm.conf").write_text(f"""\
ClusterName={CLUSTER_NAME}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ports["slurmctld"]}
SlurmdPort={ports["slurmd"]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
DefMemPerCPU=500
MinJobAge=600
KillWait=10
MpiDefault=none
JobAcctGatherType=jobacct_gather/linux
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={ports["slurmdbd"]}
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} Gres={gres} State=UNKNOWN
{partitions}
""")
        # no_gpu_env: SLURM sets no CUDA_VISIBLE_DEVICES, so on a machine with GPUs the placeholders' indices
        # never hand a job a real one; the job keeps the empty one the tests give every process.
        (self.conf_dir / "gres.conf").write_text(
            f"NodeName=localhost Name=gpu File={','.join(GPU_FILES)} Flags=no_gpu_env\n"
        )
        dbd_conf = self.conf_dir / "slurmdbd.conf"
        dbd_conf.write_text(f"""\
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={ports["slurmdbd"]}
SlurmUser=root
PidFile={root / "slurmdbd.pid"}
LogFile={root / "log" / "slurmdbd.log"}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports["mariadb"]}
StorageUser=slurm
StoragePass=slurm-test
StorageLoc=slurm_acct_db
""")
        dbd_conf.chmod(0o600)

    def _link_etc(self) -> None:
        """srun inside a job runs with SLURM_* cleared (the jobstep plugin), so it reads /etc/slurm."""
        ETC_SLURM.mkdir(parents=True, exist_ok=True)
        for name in ("slurm.conf", "gres.conf"):
            link = ETC_SLURM / name
            backup = None
            if link.exists() or link.is_symlink():
                backup = link.with_name(f"{name}.mlpipe-test-backup")
                link.rename(backup)
            link.symlink_to(self.conf_dir / name)
            self._replaced_etc.append((link, backup))

    def _node_idle(self) -> bool:
        result = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True)
        states = set(result.stdout.split())  # one line per partition
        return result.returncode == 0 and states == {"idle"}

    def _run(self, command: list[str]) -> str:
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"local SLURM: {' '.join(command)} failed: {result.stderr.strip()}")
        return result.stdout

    def _quiet(self, command: list[str]) -> bool:
        return subprocess.run(command, env=self.env, capture_output=True).returncode == 0

    def _kill_pidfile(self, pid_file: Path) -> None:
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().split()[0])
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not _alive(pid), 30, f"{pid_file.name} to stop")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")
