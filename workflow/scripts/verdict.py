from nc2ice.steps import run

run(snakemake, "verdict")  # noqa: F821
