"""Architectures this project owns (the rest come from keras.applications and keras-hub)."""
