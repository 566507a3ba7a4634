"""gpuplan's launcher: SkyPilot tasks for the cloud and local runs of the bundled training package."""
