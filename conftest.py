"""Root pytest hooks, loaded before any package's tests.

Import torch's compiler stack (which loads triton's LLVM) before any test loads numba's llvmlite: in the
other order, a later first import of ``torch._dynamo`` (AdamW's constructor does one) segfaulted this
machine's test process (dforce-datasets' numba tests, then ``dforce-plan train`` in the planning tests).
"""

import torch._dynamo  # noqa: F401
