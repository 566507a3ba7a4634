"""How much memory and time a job takes on a GPU type and count.

- memory.py: peak memory as the largest of a step's moments, counted from the architecture and the stack's dtypes;
- throughput.py: FLOPs per token (llm-foundry's accounting) and the time of a step;
- estimate.py: one job at one GPU type and count (fit, limits, suggestions); counts.py: parameter counts;
- stacks.py, allocator.py, bands.py, calibration.py: the mechanisms per training stack, the caching-allocator
  model for reserved memory, the measured error band, a user's calibration from real runs;
- simulate/: one step of the bundled trainer on meta tensors (torch only inside it).
"""
