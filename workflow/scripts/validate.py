from nc2ice.steps import run

run(snakemake, "validate")  # noqa: F821
