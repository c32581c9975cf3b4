# main moves to the validated snapshot; a failed validation stops here, main unmoved.
rule publish:
    input:
        commit=after_listing("results/{dataset}/commit.json"),
        validation=after_listing("results/{dataset}/validation.json"),
        # to write the same change again if main moved (other datasets of the repository)
        indexes=batch_indexes,
        sources=ancient("results/{dataset}/sources.tsv"),
    output:
        "results/{dataset}/published.json",
    log:
        "results/{dataset}/logs/publish.log",
    conda:
        "../../environment.yml"
    resources:
        **job_resources("publish"),
        **store_turn(),
    script:
        "../scripts/publish.py"
