"""jitsi_py"""
