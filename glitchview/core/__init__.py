"""GlitchView's engine: model loading, token table, indicators, clustering, projection, analysis
files and export. Pure Python + numpy/torch/scikit-learn; never imports Qt.

Importing it forces every Hugging Face library into offline mode: GlitchView never reaches the
network, whatever the environment says."""

import os

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ[_var] = "1"
