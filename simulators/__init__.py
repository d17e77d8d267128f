"""Simulated data hall: physics of GPUs, PDUs and coolant loops, fault scenarios, and simulated devices."""
