"""The stores a person's data lives in, each behind one interface (include/stores/base.py): the
agency's vault, a client's SQL database described by a data map, a directory of server logs."""
