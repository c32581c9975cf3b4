rule scan:
    input:
        sources="results/{dataset}/sources.tsv",
    output:
        "results/{dataset}/manifests/{file_id}.json",
    log:
        "results/{dataset}/logs/scan/{file_id}.log",
    resources:
        http=1,
    script:
        "../scripts/scan.py"
