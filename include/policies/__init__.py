"""Policies: controllers' instructions, retention rules, legal holds."""
