"""fg.cuda: GPU availability. This build has no CUDA backend yet, so every
query answers "none" and moving a tensor to "cuda" raises a clear error."""


def is_built():
    return False


def is_available():
    return False


def device_count():
    return 0


def empty_cache():
    pass
