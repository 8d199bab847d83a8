"""webclient"""
