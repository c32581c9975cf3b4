"""HPC profiles (issue 9): PBS Pro on NCI Gadi through stand-in qsub/qstat/qdel, and Slurm."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from archives import clean
from conftest import REPO, snakemake_command, validation, workflow_command

from nc2ice.cluster import qsub_options, storage_flags
from nc2ice.pbs import parse, status

FAKE_PBS = Path(__file__).parent / "fake_pbs"

FINISHED = """Job Id: 1234.gadi-pbs
    Job_Name = nc2ice.scan.7
    resources_used.walltime = 01:00:04
    job_state = F
    Resource_List.walltime = 01:00:00
    Exit_status = {code}
    comment = {comment}
\tand finished
"""


@pytest.mark.parametrize(
    ("code", "comment", "expected", "why"),
    [
        (0, "Job run at ...", "success", ""),
        (1, "Job run at ...", "failed", "exit status 1"),
        (271, "job killed: walltime 3604 exceeded limit 3600", "failed", "killed at its walltime"),
        (-29, "", "failed", "killed at its walltime"),
        (-27, "", "failed", "exceeding its memory"),
    ],
)
def test_pbs_states_are_read_as_pbs_pro_reports_them(code, comment, expected, why):
    state, reason = status(parse(FINISHED.format(code=code, comment=comment)))
    assert state == expected and why in reason
    if code == 271:
        assert "walltime 01:00:04 of 01:00:00" in reason and "and finished" in reason


def test_a_job_deleted_before_it_ran_failed():
    fields = {"job_state": "F", "comment": "Job deleted as result of qdel"}
    assert status(fields) == ("failed", "finished without running: Job deleted as result of qdel")


@pytest.mark.parametrize("state", ["Q", "H", "R", "E", "W", "S", "M"])
def test_queued_and_running_jobs_are_running(state):
    assert status({"job_state": state})[0] == "running"


def test_qsub_options_for_gadi():
    config = {
        "datasets": {"d": {"sources": ["/g/data/ab12/cmip/*.nc"]}},
        "store": {"root": "/scratch/cd34/stores"},
        "cluster": {"project": "xy12", "storage": "auto"},
    }
    flags = storage_flags(config, "d", workdir="/scratch/cd34/run")
    assert flags == "scratch/cd34+gdata/ab12"
    needs = {"mem_mb": 4000, "runtime": 150, "disk_mb": 1000}
    options = qsub_options(config["cluster"], "normal", needs, flags)
    assert options == (
        "-P xy12 -q normal -l ncpus=1,mem=4000MB,walltime=02:30:00,jobfs=1000MB,"
        "storage=scratch/cd34+gdata/ab12,wd"
    )


def _profile_run(workdir: Path, config: dict, profile: str, env: dict, *args: str):
    cmd = workflow_command(workdir, config, *args, profile=profile)
    path = f"{FAKE_PBS}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    full = {**os.environ, "PATH": path, **env}
    return cmd, full


@pytest.mark.e2e
def test_a_run_through_the_gadi_profile(tmp_path, http_server, http_root):
    local = clean(tmp_path / "archive", years=(2000, 2001))
    remote = clean(http_root / "gadi", years=(2000, 2001))
    config = {
        "datasets": {
            "disk": {"sources": [str(f) for f in local]},
            "web": {"sources": [f"{http_server.url}/gadi/{f.name}" for f in remote]},
        },
        "store": {"root": str(tmp_path / "stores")},
    }
    state = tmp_path / "pbs"
    env = {"FAKE_PBS_DIR": str(state), "FAKE_PBS_WALLTIME": "scan"}
    cmd, full = _profile_run(tmp_path / "run", config, "gadi", env)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for dataset in ("disk", "web"):
        assert validation(tmp_path / "run", dataset)["passed"] is True
    submitted = (state / "qsub.log").read_text().splitlines()
    scans = [line for line in submitted if "nc2ice.scan." in line]
    assert any("-P xy12 -q normal -l ncpus=1,mem=4000MB,walltime=02:00:00" in s for s in scans)
    assert any("-q copyq" in s for s in scans)  # the dataset read over HTTP
    assert all(",wd" in s and "-j oe -o logs/pbs/" in s for s in submitted)
    # The scan PBS killed at its walltime was seen as failed and retried with more time.
    assert "killed at its walltime" in proc.stderr
    assert any("walltime=04:00:00" in s for s in scans)
    assert list((tmp_path / "run" / "logs" / "pbs").glob("scan.*.log"))


@pytest.mark.e2e
def test_an_interrupted_run_cancels_its_pbs_jobs(tmp_path):
    files = clean(tmp_path / "archive", years=(2000,))
    config = {
        "datasets": {"disk": {"sources": [str(f) for f in files]}},
        "store": {"root": str(tmp_path / "stores")},
    }
    state = tmp_path / "pbs"
    marker = tmp_path / "scanning"
    env = {
        "FAKE_PBS_DIR": str(state),
        "NC2ICE_PAUSE_AT": "scan:manifest",
        "NC2ICE_PAUSE_MARKER": str(marker),
    }
    cmd, full = _profile_run(tmp_path / "run", config, "gadi", env)
    run = subprocess.Popen(cmd, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not marker.exists() or not (state / "qstat.log").exists():
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    # Snakemake's executor holds no job while a status check runs (every 2 s here): send
    # the signal just after one, as a user's Ctrl-C almost always is.
    checks = (state / "qstat.log").stat().st_mtime
    while (state / "qstat.log").stat().st_mtime == checks:
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    run.send_signal(signal.SIGINT)  # Ctrl-C, or PBS ending the session that runs snakemake
    run.wait(120)
    cancelled = (state / "qdel.log").read_text()
    scan_job = next(line.split()[0] for line in _jobs(state) if "nc2ice.scan." in line.split()[1])
    assert scan_job in cancelled


def _jobs(state: Path) -> list[str]:
    return [f"{p.stem} {p.read_text()}" for p in state.glob("*.name")]


def test_the_slurm_profile_dry_run(tmp_path):
    config = {
        "datasets": {"web": {"sources": ["https://thredds.example.org/thredds/fileServer/a.nc"]}},
        "store": {"root": str(tmp_path / "stores")},
    }
    cmd, full = _profile_run(tmp_path / "run", config, "slurm", {}, "--dry-run")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "slurm_partition=copy" in out and "slurm_account=pawsey0123" in out
    assert "runtime=60" in out and "mem_mb=2000" in out


def test_the_nci_example_through_the_gadi_profile_dry_run(tmp_path):
    """What a Gadi user sees first: the qsub options of each job."""
    workdir = tmp_path / "run"
    (workdir / "config").mkdir(parents=True)
    (workdir / "config" / "examples").symlink_to(REPO / "config" / "examples")
    example = REPO / "config" / "examples" / "nci-thredds.yaml"
    cmd = snakemake_command(workdir, example, "gadi", "--dry-run")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    expected = "pbs=-P xy12 -q copyq -l ncpus=1,mem=2000MB,walltime=01:00:00,jobfs=1000MB,"
    assert expected + "storage=gdata/xy12,wd" in out


def test_a_step_sized_in_the_config_reaches_qsub(tmp_path):
    from nc2ice.cluster import resources
    from nc2ice.config import ConfigError
    from nc2ice.config import validate as validate_config

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    cluster = {"scheduler": "pbs", "project": "xy12", "queue_local": "normal"}
    cluster["resources"] = {"commit": {"mem_mb": 64000, "runtime": 600}}
    config = {"datasets": {"d": {"sources": [str(tmp_path / "*.nc")]}}, "cluster": cluster}
    config = validate_config(config, schema)
    commit = resources(config, "commit", "d", attempt=2)
    assert commit["mem_mb"] == 64000 and commit["runtime"] == 1200 and commit["disk_mb"] == 1000
    assert "mem=64000MB,walltime=20:00:00" in commit["pbs"]
    assert "mem=4000MB,walltime=02:00:00" in resources(config, "scan", "d")["pbs"]
    cluster["max_runtime"] = {"normal": 900}  # a retry asks for no more than the queue allows
    assert "walltime=15:00:00" in resources(config, "commit", "d", attempt=2)["pbs"]
    # A profile's config: gives numbers as text.
    text = {**config, "cluster": {**cluster, "max_runtime": {"normal": "900"}}}
    text["cluster"]["resources"] = {"commit": {"mem_mb": "64000", "runtime": "600"}}
    commit = resources(validate_config(text, schema), "commit", "d", attempt=2)
    assert "mem=64000MB,walltime=15:00:00" in commit["pbs"] and commit["mem_mb"] == 64000
    cluster["resources"] = {"comit": {"mem_mb": 64000}}
    with pytest.raises(ConfigError, match="cluster.resources"):
        validate_config(config, schema)
