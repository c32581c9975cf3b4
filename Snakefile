# nc2ice: NetCDF archives -> per-file manifests -> Icechunk -> read-back validation.
# The logic lives in the nc2ice package (src/); the rules only wire files together.


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/sources.smk"
include: "workflow/rules/scan.smk"
include: "workflow/rules/commit.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/publish.smk"
include: "workflow/rules/bundle.smk"


# On a cluster these run on the login node: quick, and the listing needs the internet.
localrules:
    all,
    demo_archive,
    list_sources,


rule all:
    default_target: True
    input:
        validations,
