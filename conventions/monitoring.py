"""Names of the optional kube-prometheus-stack install that the stacks and the after-deploy scripts share."""

from __future__ import annotations

# The Helm release (ray stack): its name prefixes the chart's objects.
KPS_RELEASE = "kube-prometheus-stack"
# Grafana's Service and its admin Secret (grafana chart 10.2.0 templates/service.yaml, secret.yaml: grafana.fullname,
# "<release>-grafana"); the Secret's keys (kube-prometheus-stack 79.7.1 values grafana.admin userKey/passwordKey).
GRAFANA_NAME = f"{KPS_RELEASE}-grafana"
GRAFANA_SECRET_KEYS = ("admin-user", "admin-password")
GRAFANA_SERVICE_PORT = 80  # grafana chart 10.2.0 values service.port
