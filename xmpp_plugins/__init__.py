"""xmpp_plugins"""
