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
    script:
        "../scripts/validate.py"
