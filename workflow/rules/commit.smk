rule commit:
    input:
        sources="results/{dataset}/sources.tsv",
        manifests=manifests,
    output:
        "results/{dataset}/commit.json",
    log:
        "results/{dataset}/logs/commit.log",
    conda:
        "../../environment.yml"
    resources:
        http=1,
    params:
        dataset=lambda wc: config["datasets"][wc.dataset],
        store=lambda wc: config["store"],
    script:
        "../scripts/commit.py"
