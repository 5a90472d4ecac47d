"""Readers for each dataset's sources (generated, bundled, offline copies, official releases).

The public entry point is :mod:`trilemma_bench.data`; these modules import neither lightning nor
each other's heavy dependencies, so metrics code can take e.g. ``toy2d.TOY2D_CENTERS`` cheaply.
"""
