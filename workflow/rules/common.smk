from nc2ice import config as nc2ice_config
from nc2ice.config import store_settings

config = nc2ice_config.validate(
    nc2ice_config.with_user_datasets(config, workflow.overwrite_configfiles),
    workflow.source_path("../schemas/config.schema.yaml"),
)
DATASETS = list(config["datasets"])
DEMO_ARCHIVE = "resources/demo"

# The connection limit comes from the config, so a plain `snakemake --cores 10` is
# throttled; `--resources http=N` on the command line still wins.
workflow.global_resources.setdefault("http", config["http"]["max_connections"])


wildcard_constraints:
    dataset="|".join(DATASETS),


def demo_archive(wildcards):
    return [DEMO_ARCHIVE] if config["datasets"][wildcards.dataset]["demo"] else []


def manifests(wildcards):
    from nc2ice.sources import read_table

    table = checkpoints.list_sources.get(dataset=wildcards.dataset).output[0]
    return [
        f"results/{wildcards.dataset}/manifests/{s.file_id}.json"
        for s in read_table(table)
    ]
