from nc2ice import steps

steps.setup_logging(snakemake.log[0])
steps.scan(
    snakemake.config,
    snakemake.wildcards.dataset,
    snakemake.wildcards.file_id,
    snakemake.input.sources,
    snakemake.output[0],
)
