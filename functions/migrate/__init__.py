"""Migrate function: applies migrations on deploy; creates the first admin agent."""
