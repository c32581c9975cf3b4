from nc2ice.steps import run

run(snakemake, "bundle")  # noqa: F821
