"""Alert engine: rules, event-time evaluation, notifiers, recording and replay."""
