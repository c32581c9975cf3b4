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
    output:
        "results/{dataset}/sources.tsv",
    log:
        "results/{dataset}/logs/list_sources.log",
    conda:
        "../../environment.yml"
    resources:
        http=lambda wildcards: config["http"]["max_connections"],
    params:
        # a changed list of sources relists: Snakemake reruns jobs whose params changed
        sources=lambda wc: config["datasets"][wc.dataset].get("sources"),
        sources_file=lambda wc: config["datasets"][wc.dataset].get("sources_file"),
    script:
        "../scripts/list_sources.py"
