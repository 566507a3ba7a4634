"""gpuplan's planner: model registry, GPU table, memory/throughput/fit estimates, comparison, reports, CLI."""
