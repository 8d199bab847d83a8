"""jicofo_py"""
