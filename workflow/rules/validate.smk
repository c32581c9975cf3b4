# A snapshot is validated in parts (the files that changed, and a sample of the others; the
# plan is in commit.json), one job each; the verdict joins them.
rule validate:
    input:
        commit=after_listing("results/{dataset}/commit.json"),
    output:
        verdict="results/{dataset}/validation/part{part}.json",
        quicklook="results/{dataset}/validation/part{part}.npz",
    log:
        "results/{dataset}/logs/validate/part{part}.log",
    conda:
        "../../environment.yml"
    resources:
        **job_resources("validate"),
    params:
        # a changed sample size revalidates: Snakemake reruns jobs whose params changed
        sample_chunks=lambda wc: config["datasets"][wc.dataset]["sample_chunks"],
    script:
        "../scripts/validate.py"


rule verdict:
    input:
        commit=after_listing("results/{dataset}/commit.json"),
        parts=validation_parts,
    output:
        "results/{dataset}/validation.json",
    log:
        "results/{dataset}/logs/verdict.log",
    conda:
        "../../environment.yml"
    resources:
        **job_resources("verdict"),
    script:
        "../scripts/verdict.py"
