rule dataset_report:
    input:
        commit=after_listing("results/{dataset}/commit.json"),
        # the parts' verdicts, joined here as the verdict joins them (beside it, not after)
        parts=validation_parts,
        # the fields the validation compared: no source is read again
        quicklook=after_listing("results/{dataset}/validation/part0.npz"),
    output:
        summary=report(
            "results/{dataset}/report/summary.html",
            caption="../report/summary.rst",
            category="{dataset}",
            labels={"page": "summary"},
        ),
        coverage=report(
            "results/{dataset}/report/coverage.png",
            caption="../report/coverage.rst",
            category="{dataset}",
            labels={"page": "coverage"},
        ),
        tables=report(
            "results/{dataset}/report/tables.html",
            caption="../report/tables.rst",
            category="{dataset}",
            labels={"page": "what the commit did"},
        ),
        quicklook=report(
            directory("results/{dataset}/report/quicklook"),
            patterns=["{variable}.png"],
            caption="../report/quicklook.rst",
            category="{dataset}",
            labels={"page": "quicklook", "variable": "{variable}"},
        ),
    log:
        "results/{dataset}/logs/report.log",
    conda:
        "../../environment.yml"
    resources:
        **job_resources("dataset_report"),
    script:
        "../scripts/report.py"
