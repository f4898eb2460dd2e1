"""The allocator setting (trkx.runtime): freed memory is reused without new page faults."""
import os
import subprocess
import sys

import pytest

PROBE = """
import resource, torch
torch.set_num_threads(1)
from trkx.runtime import keep_freed_memory
took = keep_freed_memory()
torch.empty(16 << 20).fill_(1.0)            # 64 MiB, freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.empty(8 << 20).fill_(1.0)             # 32 MiB: fits in the freed block
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_of_second_allocation(env_extra: dict) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env_extra}, check=True,
                         capture_output=True, text=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    took, faults = faults_of_second_allocation({"TRKX_ALLOCATOR": ""})
    plain_took, plain_faults = faults_of_second_allocation({"TRKX_ALLOCATOR": "system"})
    assert (took, plain_took) == ("True", "False")
    # 32 MiB are 8,192 pages of 4 KiB: mapped and faulted anew under glibc's defaults, reused from
    # the heap with the setting
    assert plain_faults > 8000
    assert faults < 1000
