"""Embedded HBase: a Thrift1 server (what happybase speaks) over a durable SQLite store.

storage.py holds HBase's data model, filters.py the filters, filter_language.py their parser, handler.py the
Hbase service, wire.py the request checks, server.py the network side; cli.py adds `payment-platform hbase-gateway`.
"""
