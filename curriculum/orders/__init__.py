"""Orderings beyond random/ascending/descending, one module each (buckets, phased).

They register into `curriculum.order.ORDERINGS`; `curriculum.order` imports them, so importing
`curriculum.order` is all the wiring a recipe needs.
"""
