rule commit:
    input:
        batch_indexes,
    output:
        record="results/{dataset}/commit.json",
        skipped="results/{dataset}/skipped.tsv",
    log:
        "results/{dataset}/logs/commit.log",
    conda:
        "../../environment.yml"
    resources:
        **job_resources("commit"),
    params:
        # a changed setting recommits: Snakemake reruns jobs whose params changed
        dataset=lambda wc: store_settings(config["datasets"][wc.dataset]),
        store=lambda wc: config["store"],
    script:
        "../scripts/commit.py"
