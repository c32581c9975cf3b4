from nc2ice.steps import run

run(snakemake, "report")  # noqa: F821
