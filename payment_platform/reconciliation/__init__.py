"""Cross-store reconciliation: prove HBase and Postgres hold the same payments.

`digest` turns a payment into a canonical line and a 64-bit hash; `compare` sums those hashes per
payment-id segment, compares the two stores segment by segment, narrows down only the segments that
differ and names the differing payment ids; `readers` pulls (payment_id, rail, currency, amount) out of
each store. Plain Python apart from `readers`, so the logic is unit-tested without servers.
"""
