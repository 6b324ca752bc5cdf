"""Resources shared by every room, configured from the environment with EnvVar."""
import dagster as dg

defs = dg.Definitions(resources={})
