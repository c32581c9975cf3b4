# nc2ice: NetCDF archives -> per-file manifests -> Icechunk -> read-back validation.
# The logic lives in the nc2ice package (src/); the rules only wire files together.


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/sources.smk"
include: "workflow/rules/scan.smk"
include: "workflow/rules/commit.smk"
include: "workflow/rules/validate.smk"


rule all:
    default_target: True
    input:
        validations,
