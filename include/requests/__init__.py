"""Data subjects' requests: the register of access, rectification, erasure, restriction, objection."""
