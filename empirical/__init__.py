"""Real data, the paper's networks, batched training and measurement, built on ``theory``."""
