"""GPU node agent: reads NVML and publishes one record per GPU per poll."""
