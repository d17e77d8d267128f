"""The default rule pack: the YAML files beside this module (``alerts.rulefile`` loads them)."""
