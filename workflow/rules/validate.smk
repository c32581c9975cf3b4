rule validate:
    input:
        "results/{dataset}/commit.json",
    output:
        "results/{dataset}/validation.json",
    log:
        "results/{dataset}/logs/validate.log",
    conda:
        "../../environment.yml"
    resources:
        http=1,
    params:
        # a changed sample size revalidates: Snakemake reruns jobs whose params changed
        sample_chunks=lambda wc: config["datasets"][wc.dataset]["sample_chunks"],
    script:
        "../scripts/validate.py"
