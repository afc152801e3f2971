"""autoperi.sampling"""
