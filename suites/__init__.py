"""genbench.suites"""
