"""autoperi.baselines"""
