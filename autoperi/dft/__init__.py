"""autoperi.dft"""
