from nc2ice.steps import run

run(snakemake, "commit")  # noqa: F821
