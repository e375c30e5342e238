"""What the training program needs besides the network. ``simple_cnn_from_scratch.py`` is the
program itself (data, model, step, loop); start there. Here, one job per module:

    settings.py       TrainConfig: the settings, their checks, and resuming
    options.py        the command line, built from TrainConfig
    keras_head.py     the dense head in Keras, its optimizer and its compiled step
    model_file.py     the .npz model file: saving, and loading with every member checked
    history.py        the per-epoch records (like Keras' History) and the --history file
    tensorboard_log.py  what --tensorboard writes
    augmentation.py   distorted digits for training (rotation, scale, elastic, pen width)
    stopping.py       Ctrl-C, SIGTERM, SIGHUP and a closed output: stop, save, exit status
    output_files.py   the outputs checked before any work: writable, never a stranger's file
    messages.py       what the program says: the run, why it stopped, what to try next

Nothing here imports TensorFlow at import time except ``keras_head`` and ``tensorboard_log``.
"""
