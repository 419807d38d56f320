"""The default results store and published reference numbers."""
