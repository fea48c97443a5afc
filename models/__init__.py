"""Training sets, training, evaluation, ONNX export and the model registry (platform environment).

Importing this package is cheap: every heavy dependency (scikit-learn, skl2onnx, pyiceberg, boto3)
is imported by the submodule that needs it. Scoring and reason codes are the stream's own
(``udfs/scorer.py``: numpy, pandas, onnxruntime), so batch and stream scores cannot drift apart.
"""
