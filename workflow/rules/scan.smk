rule scan:
    input:
        "results/{dataset}/batches/{batch}.tsv",
    output:
        "results/{dataset}/manifests/{batch}.tsv",
    log:
        "results/{dataset}/logs/scan/{batch}.log",
    conda:
        "../../environment.yml"
    resources:
        **job_resources("scan"),
    params:
        # a changed threshold rescans: Snakemake reruns jobs whose params changed
        inline_threshold=lambda wc: config["datasets"][wc.dataset]["inline_threshold"],
    script:
        "../scripts/scan.py"
