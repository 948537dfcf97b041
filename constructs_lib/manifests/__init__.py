"""Kubernetes API objects for Ray, written as the objects the API server receives.

Pure functions of typed props, one module per concern: ``ray_cluster`` (the RayCluster), ``storage`` (the FSx
volume and claim), ``jobs`` (the job-submission objects), ``network_policy`` (who may reach the head) and ``pods``
(what their pods share). The ray stacks hand them to Terraform, ``scripts/render_jobs.py`` writes the
job-submission ones to YAML, and the tests validate exactly these dicts against the KubeRay CRD schemas and the
Kubernetes OpenAPI schemas. The commands the user guide gives live in ``conventions/commands.py``.
"""
