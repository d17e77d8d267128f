"""The default rule pack (the YAML files beside this module); ``alerts.rules.load_rules`` loads rule files."""

from dcim.alerts.rulefile import DEFAULT_RULES_DIR, load_rules

__all__ = ["DEFAULT_RULES_DIR", "load_rules"]
