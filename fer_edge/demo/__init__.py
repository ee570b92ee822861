"""Real-time demo stage. Light tier: never imports TensorFlow."""
