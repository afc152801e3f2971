"""autoperi.training"""
