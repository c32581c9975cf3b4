rule scan:
    input:
        sources="results/{dataset}/sources.tsv",
    output:
        "results/{dataset}/manifests/{file_id}.json",
    log:
        "results/{dataset}/logs/scan/{file_id}.log",
    conda:
        "../../environment.yml"
    resources:
        http=1,
    params:
        # a changed threshold rescans: Snakemake reruns jobs whose params changed
        inline_threshold=lambda wc: config["datasets"][wc.dataset]["inline_threshold"],
    script:
        "../scripts/scan.py"
