"""Experiments measured and not shipped: nothing in the engine, the doors, infra/ or training/
imports them (research/README.md)."""
