"""Conventions every layer shares: Kubernetes label and taint keys, resource names, quantity arithmetic
(``kubernetes``), the AWS names derived from the deployment name (``naming``), the EKS add-ons (``eks``).

One owner per fact. Config validates against these, stacks derive node labels from them, constructs write
them into objects, tests read them back. Nothing here imports cdktf, pydantic or the config.
"""
