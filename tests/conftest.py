import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).parent)
if _TESTS_DIR not in sys.path:  # tests/ is not a package
    sys.path.insert(0, _TESTS_DIR)

from s3server import s3_bucket, s3_client, s3_env, s3_server  # noqa: E402, F401  (fixtures)
