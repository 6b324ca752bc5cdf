"""The local dev stack of payment_platform, apart from the product: the HBase Thrift1 gateway (hbase_gateway),
the embedded servers and `up` (stack), the headless demo (demo). See devstack/README.md."""
