rule validate:
    input:
        commit=after_listing("results/{dataset}/commit.json"),
        sources=ancient("results/{dataset}/sources.tsv"),
    output:
        "results/{dataset}/validation.json",
    log:
        "results/{dataset}/logs/validate.log",
    conda:
        "../../environment.yml"
    resources:
        **job_resources("validate"),
    params:
        # a changed sample size revalidates: Snakemake reruns jobs whose params changed
        sample_chunks=lambda wc: config["datasets"][wc.dataset]["sample_chunks"],
    script:
        "../scripts/validate.py"
