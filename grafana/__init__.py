"""Grafana as code: dashboards built with grafana-foundation-sdk, provisioning files, render and publish."""
