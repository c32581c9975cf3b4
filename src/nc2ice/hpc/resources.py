"""What a job asks a batch system for: memory, time, scratch space, queue, and on NCI Gadi
the storage it touches; one description for the PBS and the Slurm profiles.

Every rule declares ``mem_mb``, ``runtime`` (minutes), ``disk_mb`` and ``remote`` (1 when
the job reads remote sources or writes a remote store: on Gadi and Setonix only the copy
queue reaches the internet).  With ``cluster.scheduler: pbs`` a job also gets ``pbs``, its
qsub options, which the Gadi profile passes to ``qsub`` and a dry run shows; with
``slurm`` it gets ``slurm_partition`` and ``slurm_account`` for the Slurm executor.

A batch job does not inherit the environment of the process that submits it: the main
process passes on what jobs need (``job_environment``), through Snakemake's ``envvars``.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nc2ice.access import normalize_url
from nc2ice.config import passable

# Per step: memory (MB), time (minutes), scratch (MB); `cluster.resources` overrides them.
# A retry after a kill gets more time, up to the queue's longest (`cluster.max_runtime`).
NEEDS = {
    "list_sources": {"mem_mb": 2000, "runtime": 60, "disk_mb": 1000},
    "scan": {"mem_mb": 4000, "runtime": 120, "disk_mb": 1000},
    "commit": {"mem_mb": 16000, "runtime": 240, "disk_mb": 1000},
    "validate": {"mem_mb": 8000, "runtime": 120, "disk_mb": 4000},  # a part of the files
    "verdict": {"mem_mb": 2000, "runtime": 30, "disk_mb": 1000},  # the parts' verdicts joined
    "dataset_report": {"mem_mb": 2000, "runtime": 30, "disk_mb": 1000},  # a few plots
    "publish": {"mem_mb": 4000, "runtime": 60, "disk_mb": 1000},  # rewrites only in shared stores
    "bundle": {"mem_mb": 8000, "runtime": 240, "disk_mb": 4000},  # small datasets, every step
}
GADI_STORAGE = re.compile(r"^/(g/data|scratch)/([A-Za-z0-9_]+)(/|$)")
# What a job needs from the environment of the main process, which PBS does not pass on
# (Slurm does): the Python environment (Snakemake already starts jobs with the main
# process's Python, by its full path), proxies, certificates, and the S3 credentials.
# TMPDIR, HOME and USER are the job's own.
JOB_ENVIRONMENT = (
    "PATH",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "HDF5_PLUGIN_PATH",
    "ICECHUNK_LOG",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)
JOB_ENVIRONMENT_PREFIXES = ("AWS_", "NC2ICE_")


def job_environment(path_variables: list[str]) -> list[str]:
    """The environment variables the main process passes on to its jobs: those jobs need
    (``JOB_ENVIRONMENT``) and those the config's paths use (so that a job, which parses the
    config again, expands them alike), where set; Snakemake exports them in each job."""
    names = [
        *JOB_ENVIRONMENT,
        *sorted(n for n in os.environ if n.startswith(JOB_ENVIRONMENT_PREFIXES)),
        *path_variables,
    ]
    return [n for n in dict.fromkeys(names) if os.environ.get(n) and passable(os.environ[n])]


def is_remote(config: dict[str, Any], dataset: str) -> bool:
    """Whether the dataset's jobs need the internet (remote sources, or a store on S3)."""
    from nc2ice.config import store_location
    from nc2ice.sources.files import patterns

    ds = config["datasets"][dataset]
    urls = [p["thredds"] if isinstance(p, dict) else normalize_url(p) for p in patterns(ds)]
    store, _ = store_location(config, dataset)
    return any(not u.startswith("file://") for u in [*urls, store])


def storage_flags(config: dict[str, Any], dataset: str, workdir: str | None = None) -> str:
    """Gadi's ``-l storage`` for the project folders a dataset's jobs touch (its local
    sources, its store, the working directory), e.g. ``gdata/ab12+scratch/cd34``."""
    from nc2ice.config import store_location
    from nc2ice.sources.files import patterns

    setting = (config.get("cluster") or {}).get("storage") or "auto"
    if setting != "auto":
        return str(setting)
    paths = [workdir or os.getcwd(), urlsplit(store_location(config, dataset)[0]).path]
    for pattern in patterns(config["datasets"][dataset]):
        if isinstance(pattern, str) and normalize_url(pattern).startswith("file://"):
            paths.append(urlsplit(normalize_url(pattern)).path)
    found = []
    for path in paths:
        match = GADI_STORAGE.match(str(Path(path)))
        if match:
            kind = "gdata" if match.group(1) == "g/data" else "scratch"
            found.append(f"{kind}/{match.group(2)}")
    return "+".join(dict.fromkeys(found))


def resources(config: dict[str, Any], rule: str, dataset: str, attempt: int = 1) -> dict[str, Any]:
    """The resources one job of ``rule`` asks for.  They are set in the config, not with
    ``--set-resources``: the qsub options are made from them before Snakemake applies that."""
    cluster = config.get("cluster") or {}
    given = (cluster.get("resources") or {}).get(rule, {})
    needs = {**NEEDS[rule], **{k: int(v) for k, v in given.items()}}  # a profile gives text
    remote = int(is_remote(config, dataset))
    queue = cluster.get("queue_remote" if remote else "queue_local")
    runtime = needs["runtime"] * attempt
    longest = (cluster.get("max_runtime") or {}).get(queue)
    if longest:  # qsub refuses a job asking for more than its queue allows
        runtime = min(runtime, int(longest))
    out: dict[str, Any] = {**needs, "runtime": runtime, "remote": remote}
    if cluster.get("scheduler") == "pbs":
        out["pbs"] = qsub_options(cluster, queue, out, storage_flags(config, dataset))
    elif cluster.get("scheduler") == "slurm":
        if queue:
            out["slurm_partition"] = queue
        if cluster.get("project"):
            out["slurm_account"] = cluster["project"]
    return out


def qsub_options(cluster: dict[str, Any], queue: str | None, needs: dict, storage: str) -> str:
    """``-P … -q … -l ncpus=…,mem=…,walltime=…,jobfs=…,storage=…,wd`` for one job, each
    value quoted for the shell that runs the submit command (the schema also checks them).
    Gadi's copyq runs one CPU per job."""
    hours, minutes = divmod(int(needs["runtime"]), 60)
    limits = [
        "ncpus=1",
        f"mem={needs['mem_mb']}MB",
        f"walltime={hours:02d}:{minutes:02d}:00",
        f"jobfs={needs['disk_mb']}MB",
    ]
    if storage:
        limits.append(f"storage={storage}")
    limits.append("wd")
    options = ["-P", str(cluster["project"])] if cluster.get("project") else []
    if queue:
        options += ["-q", queue]
    return shlex.join([*options, "-l", ",".join(limits)])
