-- Dagster's run, event and schedule storage lives beside the payments ledger, in its own database.
CREATE DATABASE dagster OWNER payments;
