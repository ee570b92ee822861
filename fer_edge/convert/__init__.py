"""Conversion stage. Heavy tier: the modules below import TensorFlow; this file imports nothing."""
