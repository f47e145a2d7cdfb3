"""Test-wide setup: 8 virtual CPU devices and a private dataset cache.

Both must be set before JAX starts, so they live here rather than in fixtures.
Subprocesses started by tests inherit them.
"""

import os
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAXCOMPRESS_DATA_DIR", tempfile.mkdtemp(prefix="jaxcompress-test-data-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
