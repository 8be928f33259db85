"""The registry's model names, without PyTorch: ``aetool --help`` shows them and ``aetool train`` refuses a typo
before PyTorch loads. ``aetool.models.REGISTRY`` holds a model of each name, in this order (a test checks it)."""

# The ten models of the course report, in its order: what `aetool report` trains and reproduces.
REPORT_MODELS = (
    "pca",
    "deep",
    "ae64",
    "ae128",
    "ae256",
    "sparse",
    "denoise-dense",
    "conv-unpool",
    "conv-unpool-deconv",
    "conv-deconv",
)
MODELS = (*REPORT_MODELS, "dncnn", "denoise", "anomaly")  # the report's, then round 2's
