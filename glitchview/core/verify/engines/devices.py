"""Where the torch engine runs: the device and number format chosen from what the machine has,
and whether the network fits there. Pure functions of a `Machine`, so the choice is tested on any
machine (a CPU-only one included)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import GlitchViewError

DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_DEVICE = "auto"  # the window's engine setting and the command line's --device start here
HEADROOM = 1.25  # activations, the key/value cache of a batch and the allocator's slack, over the weights
GIB = 1024 ** 3


class DeviceError(GlitchViewError):
    """The requested device is absent, or the network does not fit in its memory."""


@dataclass(frozen=True)
class Machine:
    """What torch sees: free bytes per CUDA device, whether MPS exists, free host memory, bf16 speed."""

    cuda_free: tuple[int, ...] = ()
    cuda_bf16: bool = False
    mps: bool = False
    host_free: int = 0
    cpu_bf16_fast: bool = False


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu", "cuda:0", "mps"
    dtype: str  # "float32", "bfloat16", "float16"
    need_bytes: int

    def describe(self) -> str:
        return f"{self.dtype} on {self.device}"


BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def dtype_for(device: str, precision: str, machine: Machine) -> str:
    """float32 stays float32 when asked; otherwise bfloat16 on GPUs that have it (float16 on older GPUs
    and MPS), and on the CPU bfloat16 only where it has bf16 matrix units."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bfloat16" if machine.cuda_bf16 else "float16"
    if device == "mps":
        return "float16"
    return "bfloat16" if machine.cpu_bf16_fast else "float32"


def place(requested: str, precision: str, parameters: int, machine: Machine, name: str = "the model") -> Placement:
    """The device and dtype for a network of `parameters` weights, or a one-line `DeviceError`.
    `auto` takes the CUDA device with the most free memory when the network fits there, else MPS, else
    the CPU."""
    if requested not in DEVICES:
        raise DeviceError(f"unknown device {requested!r}: choose one of {', '.join(DEVICES)}")
    candidates: list[tuple[str, int]] = []
    if requested in ("auto", "cuda") and machine.cuda_free:
        best = max(range(len(machine.cuda_free)), key=lambda k: machine.cuda_free[k])
        candidates.append((f"cuda:{best}", machine.cuda_free[best]))
    if requested in ("auto", "mps") and machine.mps:
        candidates.append(("mps", machine.host_free))  # unified memory
    if requested in ("auto", "cpu"):
        candidates.append(("cpu", machine.host_free))
    if not candidates:
        raise DeviceError(f"--device {requested}: this machine has no {requested.upper()} device torch can use")
    for device, free in candidates:
        dtype = dtype_for(device, precision, machine)
        need = int(parameters * BYTES[dtype] * HEADROOM)
        if need <= free:
            return Placement(device, dtype, need)
    device, free = candidates[-1]
    dtype = dtype_for(device, precision, machine)
    need = int(parameters * BYTES[dtype] * HEADROOM)
    raise DeviceError(f"{name} needs about {need / GIB:.1f} GiB in {dtype} on {device} but only {free / GIB:.1f} GiB "
                      f"is free: use a GPU (--device), --engine llamacpp on its GGUF, or --server")


def this_machine() -> Machine:
    """What torch and the operating system report now."""
    import psutil
    import torch

    from .torch_engine import bf16_is_fast

    cuda: tuple[int, ...] = ()
    bf16 = False
    if torch.cuda.is_available():
        cuda = tuple(torch.cuda.mem_get_info(k)[0] for k in range(torch.cuda.device_count()))
        bf16 = torch.cuda.is_bf16_supported()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return Machine(cuda, bf16, mps, int(psutil.virtual_memory().available), bf16_is_fast())
