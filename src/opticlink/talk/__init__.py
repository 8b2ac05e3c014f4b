"""Talking to a camera's speaker over the ONVIF backchannel."""
