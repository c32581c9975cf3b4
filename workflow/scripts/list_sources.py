from nc2ice.steps import run

run(snakemake, "list_sources")  # noqa: F821
