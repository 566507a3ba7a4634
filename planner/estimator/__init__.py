"""Memory and speed estimators beyond the analytic model (planner/memory.py): the step simulator lives in
planner.estimator.simulate (torch only inside it)."""
