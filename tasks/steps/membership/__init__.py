"""Cluster membership over the cluster's life: stable node identity (identity.py, pure), the
record of it on the DB host (record.py), password rotation one node at a time (rotation.py),
scale-out and scale-in without downtime (rolling.py, remove.py)."""
