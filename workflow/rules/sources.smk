rule demo_archive:
    output:
        directory(DEMO_ARCHIVE),
    log:
        "results/logs/demo_archive.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/demo_archive.py"


checkpoint list_sources:
    input:
        demo_archive,
        asked=asked("{dataset}"),
    output:
        "results/{dataset}/sources.tsv",
    log:
        "results/{dataset}/logs/list_sources.log",
    conda:
        "../../environment.yml"
    resources:
        **job_resources("list_sources", whole=True),
    params:
        # a changed list of sources or batch size relists: Snakemake reruns on changed params
        sources=lambda wc: config["datasets"][wc.dataset].get("sources"),
        sources_file=lambda wc: config["datasets"][wc.dataset].get("sources_file"),
        parts=lambda wc: config["datasets"][wc.dataset].get("parts"),
        batch_size=lambda wc: config["datasets"][wc.dataset]["batch_size"],
    script:
        "../scripts/list_sources.py"
