"""Metric code shared by every suite: functions from features/NLLs to numbers."""
