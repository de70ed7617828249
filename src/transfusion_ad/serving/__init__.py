"""Ways to score parts on the line: the MLflow pyfunc model (REST via ``mlflow models serve``),
ONNX export and the review page."""
