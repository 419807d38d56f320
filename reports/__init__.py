"""genbench.reports"""
