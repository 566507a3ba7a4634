"""gpuplan's training package: shipped to the machine that trains; imports nothing else of gpuplan.

`train.spec` (the job spec) is torch-free; everything else needs the `train` extra.
"""
