rule commit:
    input:
        sources="results/{dataset}/sources.tsv",
        manifests=manifests,
    output:
        "results/{dataset}/commit.json",
    log:
        "results/{dataset}/logs/commit.log",
    resources:
        http=1,
    script:
        "../scripts/commit.py"
