"""Constructs, one concern each. Each takes a typed props object and exposes its outputs as attributes.

The construct id of every Terraform element inside a construct is its resource name: the stacks turn
ids into readable, stable addresses (``aws_eks_cluster.ray``), see ``stacks/addresses.py``.
"""
