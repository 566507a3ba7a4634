"""gpuplan's price layer: cloud offers, live refresh, local cost of ownership. A leaf package."""
