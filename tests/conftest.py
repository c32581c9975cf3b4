from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from servers import HTTPServer, S3Server

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def http_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("http-root")


@pytest.fixture(scope="session")
def http_server(http_root):
    # Another loopback address lets two test sessions run at once (each needs port 80).
    server = HTTPServer(http_root, host=os.environ.get("NC2ICE_TEST_HTTP_HOST", "127.0.0.1"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server().start()
    yield server
    server.stop()


def snakemake_command(workdir: Path, configfile: Path, profile: str, *args: str) -> list[str]:
    """The snakemake command a user would type in ``workdir``, through one of our profiles."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--profile",
        str(REPO / "profiles" / profile),
        *args,
    ]


def workflow_command(
    workdir: Path, config: dict, *args: str, profile: str = "default"
) -> list[str]:
    """The snakemake command a user would type, on a config of our own."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cores = ("--cores", "2") if profile == "default" else ()
    return snakemake_command(workdir, workdir / "config.yaml", profile, *cores, *args)


def _environment(env: dict | None) -> dict:
    full = {**os.environ, **(env or {})}  # a value of None removes the variable
    return {k: v for k, v in full.items() if v is not None}


def run_workflow(
    workdir: Path, config: dict, *args: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run snakemake as a user would, in its own process, and wait for it."""
    cmd = workflow_command(workdir, config, *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_environment(env), timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def start_workflow(workdir: Path, config: dict, env: dict | None = None) -> subprocess.Popen:
    """Start snakemake in a process group of its own (so all of it can be killed at once)."""
    cmd = workflow_command(workdir, config)
    log = (workdir / "snakemake.out").open("w")
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=_environment(env), start_new_session=True
    )


def validation(workdir: Path, dataset: str) -> dict:
    return json.loads((workdir / "results" / dataset / "validation.json").read_text())


def commit_record(workdir: Path, dataset: str) -> dict:
    return json.loads((workdir / "results" / dataset / "commit.json").read_text())


READ_BACK = r"""
import json, sys
import icechunk, numpy as np, xarray as xr
store, sources, authorize, s3 = json.loads(sys.argv[1])
if store.startswith("s3://"):
    bucket, _, prefix = store[5:].partition("/")
    storage = icechunk.s3_storage(bucket=bucket, prefix=prefix, endpoint_url=s3, allow_http=True,
                                  force_path_style=True, region="us-east-1", from_env=True)
else:
    storage = icechunk.local_filesystem_storage(store.removeprefix("file://"))
creds = {p: icechunk.s3_from_env_credentials() if p.startswith("s3") else None for p in authorize}
creds = icechunk.containers_credentials(creds)
repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access=creds)
ds = xr.open_zarr(repo.readonly_session("main").store, consolidated=False).load()
want = xr.concat([xr.open_dataset(s).load() for s in sources], dim="time", data_vars="minimal",
                 coords="minimal", compat="override", join="override")
xr.testing.assert_equal(ds.drop_attrs(), want.drop_attrs())
print("READ BACK OK", dict(ds.sizes))
"""


def read_back_in_new_process(
    store: str, sources: list[Path], prefixes: list[str], s3_endpoint: str | None = None
) -> str:
    arg = json.dumps([store, [str(s) for s in sources], prefixes, s3_endpoint])
    proc = subprocess.run(
        [sys.executable, "-c", READ_BACK, arg], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def commit(plan, store: str, prefixes: list[str], checksums: dict | None = None) -> str:
    """Commit a plan as the workflow would, outside the workflow, and publish it on main
    (as if it passed validation); the new snapshot's id."""
    from nc2ice.access import Access
    from nc2ice.store.publish import publish
    from nc2ice.store.repository import open_repository
    from nc2ice.store.snapshot import commit_plan

    metadata = {
        "input_digest": json.dumps(plan.files),
        "order": plan.files,
        "sources": {f: {"url": "", "manifest_sha256": f} for f in plan.files},
        "config": {},
    }
    outcome = commit_plan(
        plan,
        dataset="test",
        store_url=store,
        group="",
        access=Access(),
        prefixes=prefixes,
        metadata=metadata,
        checksums=checksums or {},
    )
    if not outcome.new:
        return outcome.snapshot
    repo = open_repository(store, Access())
    return publish(repo, "test", "", outcome, rewrite=lambda tip: outcome).snapshot
