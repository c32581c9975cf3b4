from nc2ice.steps import run

run(snakemake, "scan")  # noqa: F821
