"""What the training program needs besides the network: its settings, the Keras dense head, the
model file, TensorBoard logs, and how a run stops and what it says. ``simple_cnn_from_scratch.py``
is the program itself; start there.

Nothing here imports TensorFlow at import time except ``keras_head`` and ``tensorboard_log``.
"""
