from nc2ice import demo, steps

steps.setup_logging(snakemake.log[0])
demo.write_demo(snakemake.output[0])
