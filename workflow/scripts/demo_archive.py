from nc2ice.steps import run

run(snakemake, "demo_archive")  # noqa: F821
