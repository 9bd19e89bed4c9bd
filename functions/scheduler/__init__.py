"""Scheduler function: one tick per EventBridge Scheduler invocation, then worker wake-ups."""
