"""Where things are inside a model image: what the image's entrypoint needs at start-up, kept
apart from the build code so that starting a container imports nothing else."""

MODEL_DIR = "/opt/ml/model"  # SageMaker's layout; AzureML's custom containers take any
APP_DIR = "/opt/sparkserve"
USER_ID = 10001
PORT = 8080
CAPTURE_DIR = "/opt/ml/capture"  # a deployment's capture folder, mounted when capture is on
