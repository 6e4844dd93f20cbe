"""Selection and the paper trail: ranking, the report index, co-signatures and comparisons.

Everything here reads signed reports only (run directories or envelopes), never evidence it
has not verified.
"""
