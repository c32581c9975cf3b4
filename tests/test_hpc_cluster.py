"""HPC profiles (issue 9): PBS Pro on NCI Gadi through stand-in qsub/qstat/qdel, and Slurm."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from archives import clean
from conftest import REPO, snakemake_command, validation, workflow_command

from nc2ice import config as config_mod
from nc2ice.errors import ConfigError
from nc2ice.hpc.pbs import parse, status
from nc2ice.hpc.resources import NEEDS, job_environment, qsub_options, resources, storage_flags

FAKE_PBS = Path(__file__).parent / "fake_pbs"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
# What the Gadi profile gives (its config: key, as Snakemake passes it: numbers as text).
GADI_DEFAULTS = {
    "scheduler": "pbs",
    "queue_remote": "copyq",
    "queue_local": "normal",
    "storage": "auto",
    "max_runtime": {"copyq": "600", "normal": "2880"},
}

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


def test_qsub_options_are_quoted_for_the_shell():
    """The options reach `qsub` through a shell: each value stays one word, whatever it is
    (the schema refuses such values too: see the next test)."""
    needs = {"mem_mb": 4000, "runtime": 60, "disk_mb": 1000}
    cluster = {"project": "ab12; touch /tmp/pwned"}
    words = shlex.split(qsub_options(cluster, "normal $(id)", needs, "gdata/ab12"))
    assert words[:4] == ["-P", "ab12; touch /tmp/pwned", "-q", "normal $(id)"]
    assert words[4:] == [
        "-l",
        "ncpus=1,mem=4000MB,walltime=01:00:00,jobfs=1000MB,storage=gdata/ab12,wd",
    ]


@pytest.mark.parametrize(
    ("cluster", "key"),
    [
        ({"project": "ab12; touch /tmp/pwned"}, "cluster.project"),
        ({"project": "-W depend=afterok:1"}, "cluster.project"),
        ({"queue_local": "normal && id"}, "cluster.queue_local"),
        ({"queue_remote": "copyq`id`"}, "cluster.queue_remote"),
        ({"storage": "gdata/ab12 -W x"}, "cluster.storage"),
        ({"storage": "gdata/ab12+$(id)"}, "cluster.storage"),
        ({"max_runtime": {"normal;id": 60}}, "cluster.max_runtime"),
        ({"scheduler": "sge"}, "cluster.scheduler"),
    ],
)
def test_cluster_values_that_reach_a_shell_are_checked(cluster, key):
    config = {"datasets": {"d": {"sources": ["/g/data/ab12/*.nc"]}}, "cluster": cluster}
    with pytest.raises(ConfigError, match=f"^config error at {key}") as err:
        config_mod.validate(config, SCHEMA)
    assert len(str(err.value).splitlines()) == 1


def _loaded(cluster: dict, tmp_path: Path, defaults: dict | None = GADI_DEFAULTS):
    """The config as common.smk loads it: a profile's config: applied like --config."""
    user = tmp_path / "mine.yaml"
    config = {"datasets": {"d": {"sources": ["/g/data/ab12/x/*.nc"]}}, "cluster": cluster}
    user.write_text(yaml.safe_dump(config))
    if defaults is not None:
        config = {**config, "cluster_defaults": defaults}
    return config_mod.load(config, [str(user)], SCHEMA)[0]


def test_the_users_cluster_settings_win_over_the_profiles_defaults(tmp_path):
    cluster = {"project": "ab12", "queue_local": "express", "max_runtime": {"normal": 90}}
    config = _loaded(cluster, tmp_path)
    merged = config["cluster"]
    assert merged["project"] == "ab12" and merged["queue_local"] == "express"
    assert merged["scheduler"] == "pbs" and merged["queue_remote"] == "copyq"
    assert merged["max_runtime"] == {"copyq": "600", "normal": 90}
    options = resources(config, "commit", "d", attempt=1)["pbs"]
    assert options.startswith("-P ab12 -q express -l") and "storage=gdata/ab12," in options


@pytest.mark.parametrize(
    ("project", "defaults", "message"),
    [
        (None, GADI_DEFAULTS, "no project is set for the pbs jobs"),
        ("xy12", GADI_DEFAULTS, "'xy12' is the examples' placeholder"),
        (None, {"scheduler": "slurm"}, "no project is set for the slurm jobs"),
        ("pawsey0123", {"scheduler": "slurm"}, "'pawsey0123' is the examples' placeholder"),
    ],
)
def test_a_batch_run_without_a_project_of_its_own_stops(tmp_path, project, defaults, message):
    cluster = {"project": project} if project else {}
    with pytest.raises(ConfigError, match=f"^cluster.project: {message}") as err:
        _loaded(cluster, tmp_path, defaults)
    assert "in your --configfile as cluster: {project:" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
    assert _loaded(cluster, tmp_path, None)["cluster"]["scheduler"] is None  # a local run


def test_every_step_has_its_own_size_and_the_schema_knows_it(tmp_path):
    schema = yaml.safe_load(SCHEMA.read_text())
    steps = schema["$defs"]["cluster"]["properties"]["resources"]["propertyNames"]["enum"]
    assert set(steps) == set(NEEDS)
    config = _loaded({"project": "ab12"}, tmp_path)
    report = resources(config, "dataset_report", "d")
    assert report["mem_mb"] == 2000 and report["runtime"] == 30
    assert "mem=2000MB,walltime=00:30:00" in report["pbs"]
    assert "walltime" in resources(config, "publish", "d")["pbs"]
    sized = {"project": "ab12", "resources": {"dataset_report": {"mem_mb": 3000}}}
    assert resources(_loaded(sized, tmp_path), "dataset_report", "d")["mem_mb"] == 3000


def test_jobs_get_the_environment_they_need_and_nothing_else(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    monkeypatch.setenv("NC2ICE_PAUSE_AT", "scan:manifest")
    monkeypatch.setenv("VIRTUAL_ENV", "/g/data/ab12/me/env")
    monkeypatch.setenv("ARCHIVE", "/g/data/ab12/archive")
    monkeypatch.setenv("QUOTED", "it's")
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    names = job_environment(["ARCHIVE", "QUOTED"])
    assert {"PATH", "VIRTUAL_ENV", "AWS_SECRET_ACCESS_KEY", "NC2ICE_PAUSE_AT", "ARCHIVE"} <= set(
        names
    )
    assert not {"LD_LIBRARY_PATH", "QUOTED", "TMPDIR", "HOME", "USER"} & set(names)


def _profile_run(workdir: Path, config: dict, profile: str, env: dict, *args: str):
    cmd = workflow_command(workdir, config, *args, profile=profile)
    path = f"{FAKE_PBS}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    full = {**os.environ, "PATH": path, **env}
    return cmd, full


@pytest.mark.e2e
def test_a_run_through_the_gadi_profile(tmp_path, http_server, http_root):
    """Jobs start without the submitting shell's environment, as on Gadi (tests/fake_pbs),
    where PBS sets PROJECT to the job's project: the store path's ${PROJECT} must still be
    the main process's in every job."""
    local = clean(tmp_path / "archive", years=(2000, 2001))
    remote = clean(http_root / "gadi", years=(2000, 2001))
    config = {
        "datasets": {
            "disk": {"sources": [f"${{NC2ICE_TEST_ARCHIVE}}/{f.name}" for f in local]},
            "web": {"sources": [f"{http_server.url}/gadi/{f.name}" for f in remote]},
        },
        "store": {"root": f"{tmp_path}/${{PROJECT}}/stores"},
        "cluster": {"project": "ab12"},  # the user's own config: it wins over the profile
    }
    state = tmp_path / "pbs"
    env = {
        "FAKE_PBS_DIR": str(state),
        "FAKE_PBS_WALLTIME": "scan",
        "PROJECT": "cd34",  # Gadi's default project of the login; the jobs are charged to ab12
        "NC2ICE_TEST_ARCHIVE": str(tmp_path / "archive"),
    }
    cmd, full = _profile_run(tmp_path / "run", config, "gadi", env)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for dataset in ("disk", "web"):
        assert validation(tmp_path / "run", dataset)["passed"] is True
        assert (tmp_path / "cd34" / "stores" / f"{dataset}.icechunk").is_dir()
    assert not (tmp_path / "ab12").exists()  # no job expanded ${PROJECT} to its own
    submitted = (state / "qsub.log").read_text().splitlines()
    assert all(shlex.split(s)[shlex.split(s).index("-P") + 1] == "ab12" for s in submitted)
    scans = [line for line in submitted if "nc2ice.scan." in line]
    assert any("-P ab12 -q normal -l ncpus=1,mem=4000MB,walltime=02:00:00" in s for s in scans)
    assert any("-q copyq" in s for s in scans)  # the dataset read over HTTP
    assert all(",wd" in s and "-j oe -o logs/pbs/" in s for s in submitted)
    reports = [line for line in submitted if "nc2ice.dataset_report." in line]
    assert len(reports) == 2 and all("mem=2000MB,walltime=00:30:00" in s for s in reports)
    # Each job script runs this Python by its path, after exporting what the job needs.
    script = next(state.glob("*.script")).read_text()
    assert "export " in script and "PROJECT='cd34'" in script, script
    assert f"&& {sys.executable} -m snakemake" in script, script
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
        "cluster": {"project": "ab12"},
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
        "cluster": {"project": "pawsey1234"},
    }
    cmd, full = _profile_run(tmp_path / "run", config, "slurm", {}, "--dry-run")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "slurm_partition=copy" in out and "slurm_account=pawsey1234" in out
    assert "runtime=60" in out and "mem_mb=2000" in out


def test_the_nci_example_through_the_gadi_profile_dry_run(tmp_path):
    """What a Gadi user sees first: the qsub options of each job, with the project and the
    settings of the user's own config file, not the profile's."""
    workdir = tmp_path / "run"
    (workdir / "config").mkdir(parents=True)
    (workdir / "config" / "examples").symlink_to(REPO / "config" / "examples")
    example = REPO / "config" / "examples" / "nci-thredds.yaml"
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"cluster": {"project": "ab12", "max_runtime": {"copyq": 45}}}))
    cmd = snakemake_command(workdir, example, "gadi", "--dry-run")
    cmd.insert(cmd.index(str(example)) + 1, str(mine))  # --configfile <example> <mine>
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    expected = "pbs=-P ab12 -q copyq -l ncpus=1,mem=2000MB,walltime=00:45:00,jobfs=1000MB,"
    assert expected + "storage=gdata/xy12,wd" in out


@pytest.mark.parametrize("project", [None, "xy12"])
def test_a_gadi_run_without_its_own_project_submits_nothing(tmp_path, project):
    files = clean(tmp_path / "archive", years=(2000,))
    config = {
        "datasets": {"disk": {"sources": [str(f) for f in files]}},
        "store": {"root": str(tmp_path / "stores")},
        **({"cluster": {"project": project}} if project else {}),
    }
    state = tmp_path / "pbs"
    cmd, full = _profile_run(tmp_path / "run", config, "gadi", {"FAKE_PBS_DIR": str(state)})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=300)
    assert proc.returncode != 0
    said = [line for line in proc.stderr.splitlines() if line.startswith("cluster.project: ")]
    assert len(said) == 1 and "in your --configfile as cluster: {project: <your NCI" in said[0]
    assert not (state / "qsub.log").exists()


def test_a_step_sized_in_the_config_reaches_qsub(tmp_path):
    from nc2ice.config import validate as validate_config

    schema = SCHEMA
    cluster = {"scheduler": "pbs", "project": "ab12", "queue_local": "normal"}
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
