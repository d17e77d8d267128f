"""InfluxDB line protocol: ``encode`` writes it, ``decode`` reads it (the one scanner)."""
