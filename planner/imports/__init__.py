"""Plan from the configs people already have: axolotl, LLaMA-Factory, TRL/transformers and torchtune.

`load_job(path, overrides)` reads a gpuplan job spec or a foreign config (detected from its keys, or forced
with `config_format`) and returns the job spec plus an `ImportReport` of what was mapped, ignored (and why)
and missing. `export_config(spec, to)` writes a job as an axolotl, LLaMA-Factory or TRL config.
"""
from planner.imports.detect import FORMATS, detect_format
from planner.imports.load import EXPORT_FORMATS, export_config, import_config, load_job
from planner.imports.report import ImportReport

__all__ = ["FORMATS", "EXPORT_FORMATS", "ImportReport", "detect_format", "export_config", "import_config",
           "load_job"]
