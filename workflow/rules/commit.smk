rule commit:
    input:
        indexes=batch_indexes,
        # the order the files were listed in (files arrive in batches in another order)
        sources=ancient("results/{dataset}/sources.tsv"),
    output:
        record="results/{dataset}/commit.json",
        skipped="results/{dataset}/skipped.tsv",
    log:
        "results/{dataset}/logs/commit.log",
    conda:
        "../../environment.yml"
    resources:
        **job_resources("commit"),
        **store_turn(),
    params:
        # a changed setting recommits: Snakemake reruns jobs whose params changed
        dataset=lambda wc: commit_settings(config["datasets"][wc.dataset]),
        store=lambda wc: config["store"],
    script:
        "../scripts/commit.py"
