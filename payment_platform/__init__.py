"""payment_platform: synthetic B2B payments through Kafka into HBase and PostgreSQL, orchestrated by Dagster."""

__version__ = "0.1.0"
