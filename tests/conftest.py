"""Settings every test process shares, set before anything imports TensorFlow.

``TF_ENABLE_ONEDNN_OPTS=1``: TensorFlow turns its oneDNN CPU kernels on by itself only on some
processors (recent Intel ones), so without this a test could pass on one CI machine and fail on the
next: plain TensorFlow has no CPU kernel for channels-first ``Conv2D`` (``UnimplementedError`` on
AMD EPYC machines), and the two kernel sets round differently, which training tests amplify. With
it, every machine runs the same kernels. Subprocesses started by tests inherit it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
