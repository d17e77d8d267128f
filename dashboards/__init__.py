"""Grafana dashboards as code, generated JSON and provisioning."""
