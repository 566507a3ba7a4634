"""Checks on what the user typed, before any work starts: flag ranges, contradictory flags, missing extras."""
