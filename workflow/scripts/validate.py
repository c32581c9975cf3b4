from nc2ice import steps

steps.setup_logging(snakemake.log[0])
steps.validate_step(
    snakemake.config, snakemake.wildcards.dataset, snakemake.input[0], snakemake.output[0]
)
