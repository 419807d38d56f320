"""genbench.adapters"""
