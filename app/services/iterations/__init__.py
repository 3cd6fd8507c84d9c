"""Iterations: requested, claimed, run (parse, evaluate, publish), swept and retained."""
