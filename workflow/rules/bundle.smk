# Small datasets (a collection's) many to a job: every step of each, in turn, in one job;
# the per-dataset outputs are where the rules above write them (see nc2ice.bundles).
rule bundle:
    input:
        bundle_inputs,
    output:
        "results/bundles/{bundle}.json",
    log:
        "results/logs/bundles/{bundle}.log",
    conda:
        "../../environment.yml"
    resources:
        **job_resources("bundle"),
    params:
        # a changed setting of any of its datasets reruns the bundle
        settings=lambda wc: settings_digest(config, BUNDLES[wc.bundle]),
    script:
        "../scripts/bundle.py"
