"""The decision: the same training on every option (global batch), tuned per GPU type and count, and the
costs over months (periods)."""
