from nc2ice import steps

steps.setup_logging(snakemake.log[0])
steps.commit(
    snakemake.config,
    snakemake.wildcards.dataset,
    snakemake.input.sources,
    list(snakemake.input.manifests),
    snakemake.output[0],
)
