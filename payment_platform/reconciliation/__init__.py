"""Cross-store reconciliation: prove HBase and Postgres hold the same payments.

`digest` turns a payment into a canonical line and a 64-bit hash; `compare` sums those hashes per
payment-id segment, compares the two stores segment by segment, narrows down only the segments that
differ and names the differing payment ids; `validity` holds the rail rules as applied to stored rows;
`readers` pulls (payment_id, rail, currency, amount) out of each store; `evaluate` turns all of it into
the verdicts of the Dagster checks. Only `readers` (and `evaluate` through it) does I/O, so the logic is
unit-tested without servers.
"""
