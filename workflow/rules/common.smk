import re
import sys

from nc2ice import config as nc2ice_config
from nc2ice.bundles import members, settings_digest
from nc2ice.sources.collections import expand as collection_datasets
from nc2ice.hpc.resources import job_environment
from nc2ice.hpc.resources import resources as cluster_resources
from nc2ice.config import commit_settings
from nc2ice.hpc.connections import Budget, store_resource
from nc2ice.runlock import clear_stale_locks

# The user's datasets and cluster settings over the demo's and the profile's, validated,
# the paths' $VARs expanded, the collections' catalogs read into datasets (jobs, which
# parse it again, get the same values: see below).
config, _path_variables = nc2ice_config.load(
    config,
    workflow.overwrite_configfiles,
    workflow.source_path("../schemas/config.schema.yaml"),
    expand=collection_datasets,
)
# A batch job does not inherit this process's environment: Snakemake exports these in it.
workflow.register_envvars(*job_environment(_path_variables))
DATASETS = list(config["datasets"])
# Small datasets (a collection's) run many to a job, every step in it: see nc2ice.bundles.
BUNDLES = members(config)
_BUNDLED = {d for names in BUNDLES.values() for d in names}
STEPWISE = [d for d in DATASETS if d not in _BUNDLED]
DEMO_ARCHIVE = "resources/demo"


def asked(dataset):
    """The file whose time makes Snakemake list a dataset's sources again."""
    return f"results/{dataset}/.asked"


def bundle_asked(bundle):
    """The same for all the datasets of a bundle."""
    return f"results/bundles/{bundle}.asked"


if workflow.is_main_process:
    # A run killed with SIGKILL leaves Snakemake's locks behind; clear them if stale.
    clear_stale_locks()
    # Every run asks the sources what changed: it touches results/<dataset>/.asked, an
    # input of the listing, so Snakemake lists again (see "Reruns" in the README); a
    # bundle's one marker stands for its datasets (10,000 files cost a run seconds).
    nc2ice_config.mark_asked(
        [*(asked(d) for d in STEPWISE), *(bundle_asked(b) for b in BUNDLES)],
        now=nc2ice_config.runs_jobs(sys.argv),
    )

if workflow.is_main_process and any(a.startswith("--report") for a in sys.argv):
    # The report's first page: every dataset at a glance (workflow/report/workflow.rst).
    from nc2ice.check.summary import html_table, rows

    workflow.config["nc2ice_summary"] = html_table(rows(DATASETS))


def summarize(log):
    """The run's last lines, and results/summary.tsv: every dataset, failures first."""
    from nc2ice.check.summary import headline, rows, write_table

    found = rows(DATASETS)
    write_table(found, Path("results/summary.tsv"))
    for row in [r for r in found if r["verdict"] in ("FAILED", "error")][:20]:
        print(
            f"nc2ice: {row['dataset']}: {row['verdict']}: {row['detail']}",
            file=sys.stderr,
        )
    print(f"nc2ice: {headline(found)} (results/summary.tsv)", file=sys.stderr)


onsuccess:
    summarize(log)


onerror:
    summarize(log)


# Each server (web host, S3 endpoint) is a resource capped at http.max_connections, so a
# plain `snakemake --cores 10` is throttled; `--resources net_<server>=N` still wins.
BUDGET = Budget(config)
for _name, _limit in BUDGET.limits().items():
    workflow.global_resources.setdefault(_name, _limit)
# A local store takes one writer at a time: its commits and publishes take turns.
STORES = {d: store_resource(config, d) for d in DATASETS}
for _name in set(STORES.values()) - {None}:
    workflow.global_resources.setdefault(_name, 1)


def store_turn():
    """The resources of a job that writes the dataset's store: its local store's turn."""
    return {
        name: (lambda wc, name=name: int(STORES[wc.dataset] == name))
        for name in set(STORES.values()) - {None}
    }


wildcard_constraints:
    dataset="|".join(map(re.escape, STEPWISE)) or "(?!)",
    bundle="|".join(map(re.escape, BUNDLES)) or "(?!)",
    batch=r"b\d+",
    part=r"\d+",


def job_resources(step, whole=False):
    """A job's resources, as keyword arguments: its share of each server's connections,
    and what a batch system needs (memory, time, scratch, queue: see nc2ice.hpc.resources).
    A bundle's job asks for what its first dataset's would (a collection's are alike).
    """

    def dataset(wc):
        return BUNDLES[wc.bundle][0] if step == "bundle" else wc.dataset

    shares = {
        name: (lambda wc, name=name: BUDGET.share(dataset(wc), name, whole))
        for name in BUDGET.limits()
    }
    names = cluster_resources(config, step, DATASETS[0]) if DATASETS else {}
    needs = {
        name: (
            lambda wc, attempt, name=name: cluster_resources(
                config, step, dataset(wc), attempt
            )[name]
        )
        for name in names
    }
    return {**shares, **needs}


def demo_archive(wildcards):
    return [DEMO_ARCHIVE] if config["datasets"][wildcards.dataset]["demo"] else []


def batch_indexes(wildcards):
    """The scan index of every batch of the dataset, known once the sources are listed."""
    from nc2ice.sources.batches import names

    checkpoints.list_sources.get(dataset=wildcards.dataset)
    folder = Path(f"results/{wildcards.dataset}/batches")
    return [f"results/{wildcards.dataset}/manifests/{b}.tsv" for b in names(folder)]


def validations(wildcards):
    """Every dataset published, after its validation and report pages (its bundle's job,
    for a small dataset of a collection)."""
    return [
        *expand(
            [
                "results/{dataset}/published.json",
                "results/{dataset}/report/summary.html",
            ],
            dataset=STEPWISE,
        ),
        *expand("results/bundles/{bundle}.json", bundle=BUNDLES),
    ]


def bundle_inputs(wildcards):
    """What makes a bundle's job run: its datasets asked again (every run)."""
    return bundle_asked(wildcards.bundle)


def validation_parts(wildcards):
    """The verdicts of the validation's parts, as many as the dataset's batches of files
    call for (the commit's plan gives each part its share of the files to compare)."""
    from nc2ice.store.trust import part_count

    parts = part_count(len(batch_indexes(wildcards)))
    return [
        f"results/{wildcards.dataset}/validation/part{n}.json" for n in range(parts)
    ]


def after_listing(pattern):
    """``pattern``, as input of a job that must wait for this run's listing: Snakemake then
    decides afresh whether it has to run, instead of because the listing ran."""

    def inputs(wildcards):
        checkpoints.list_sources.get(dataset=wildcards.dataset)
        return pattern.format(**wildcards)

    return inputs
