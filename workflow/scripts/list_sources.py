from nc2ice import steps

steps.setup_logging(snakemake.log[0])
steps.list_sources(snakemake.config, snakemake.wildcards.dataset, snakemake.output[0])
