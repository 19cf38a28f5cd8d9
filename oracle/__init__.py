"""bme-oracle: a Bitcoin difficulty oracle.

Data flow: sources -> crosscheck -> store -> index -> publish (see DESIGN.md).
"""

__version__ = "0.1.0"
