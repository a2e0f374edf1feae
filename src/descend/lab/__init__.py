"""descend.lab: train, compare and draw optimizers. A client of the library.

Needs the ``lab`` extra (``pip install descend[lab]``).
"""
