"""`python -m planner.cli` = `gpuplan`."""
from planner.cli import main

main()
