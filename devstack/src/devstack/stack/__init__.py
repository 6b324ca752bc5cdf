"""The embedded local stack: Kafka (Tansu), PostgreSQL, Redis, MongoDB (nx-27017) and the HBase gateway as
managed child processes, for development, tests and the demo. `manager.start_stack()` is the entry point;
`services` says how each server is launched and probed, `processes` how a child is started and stopped."""
