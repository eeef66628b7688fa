"""Benchmarks of the vault: figures, not pass/fail tests.

Run from the project root with `python -m bench` (or `make bench`); `python -m bench --help` lists
the sizes and switches. One run prints, next to each goal, the measured figure and the ratio:

1. per-field encrypt/decrypt through the vault's FieldCipher against a raw AESGCM call (goal: within 2x);
2. bulk ingest with encryption and blind indexes into SQLite and PostgreSQL (goal: >= 20,000 records/s
   on SQLite);
3. finding one subject among 1,000,000 records by blind index against decrypting and comparing the
   whole table (goal: under 5 ms per lookup).

Everything is written to a temporary directory and to throwaway PostgreSQL databases, removed at the end.
"""
