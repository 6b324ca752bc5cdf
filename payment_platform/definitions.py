"""The Dagster code location: every room's definitions merged into one.

Loading this module opens no connection and reads no environment: resources are configured with
EnvVar and resolved when a run starts.
"""
import dagster as dg

from payment_platform.defs import definitions_by_room

defs = dg.Definitions.merge(*definitions_by_room())
