from nc2ice.steps import run

run(snakemake, "publish")  # noqa: F821
