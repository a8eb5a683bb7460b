"""Where the torch engine runs: the choice of device and number format is a pure function of what the
machine has, tested here for machines this one is not (GPUs, MPS, too little memory); and what the
llama.cpp engine says of the instruction set its build uses."""

from __future__ import annotations

import pytest

from glitchview.core.verify.engines.devices import GIB, DeviceError, Machine, place
from glitchview.core.verify.engines.llamacpp_engine import build_note, simd_level

PARAMS = 1_000_000_000  # a 1B network: 4 GiB-ish in float32, 2 in bfloat16, before headroom


def test_auto_takes_the_gpu_with_most_free_memory_in_bfloat16() -> None:
    machine = Machine(cuda_free=(3 * GIB, 40 * GIB), cuda_bf16=True, host_free=64 * GIB)
    placement = place("auto", "auto", PARAMS, machine)
    assert (placement.device, placement.dtype) == ("cuda:1", "bfloat16")


def test_older_gpu_gets_float16_and_float32_stays_when_asked() -> None:
    machine = Machine(cuda_free=(40 * GIB,), cuda_bf16=False, host_free=8 * GIB)
    assert place("cuda", "auto", PARAMS, machine).dtype == "float16"
    assert place("cuda", "float32", PARAMS, machine).dtype == "float32"


def test_auto_falls_back_to_the_cpu_when_the_gpu_is_too_small() -> None:
    machine = Machine(cuda_free=(1 * GIB,), cuda_bf16=True, host_free=64 * GIB, cpu_bf16_fast=False)
    placement = place("auto", "auto", PARAMS, machine)
    assert (placement.device, placement.dtype) == ("cpu", "float32")


def test_mps_runs_float16_and_cpu_bfloat16_only_with_bf16_units() -> None:
    assert place("auto", "auto", PARAMS, Machine(mps=True, host_free=32 * GIB)).describe() == "float16 on mps"
    assert place("cpu", "auto", PARAMS, Machine(host_free=32 * GIB, cpu_bf16_fast=True)).dtype == "bfloat16"
    assert place("cpu", "auto", PARAMS, Machine(host_free=32 * GIB)).dtype == "float32"


def test_a_network_that_fits_nowhere_is_refused_in_one_line() -> None:
    with pytest.raises(DeviceError, match=r"needs about 4\.7 GiB in float32 on cpu but only 2\.0 GiB is free") as err:
        place("auto", "float32", PARAMS, Machine(host_free=2 * GIB), "Big-1B")
    assert "\n" not in str(err.value) and "Big-1B" in str(err.value)


def test_an_absent_device_is_named() -> None:
    with pytest.raises(DeviceError, match="no CUDA device"):
        place("cuda", "auto", PARAMS, Machine(host_free=64 * GIB))
    with pytest.raises(DeviceError, match="unknown device"):
        place("tpu", "auto", PARAMS, Machine(host_free=64 * GIB))


AVX2_BUILD = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | "
              "OPENMP = 1 | REPACK = 1 | ")  # llama_print_system_info of pip's default llama-cpp-python build here
NATIVE_BUILD = AVX2_BUILD.replace("BMI2 = 1 |", "BMI2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 |")


def test_llamacpp_build_is_read_from_its_system_info() -> None:
    assert simd_level(AVX2_BUILD) == "AVX2"
    assert simd_level(NATIVE_BUILD) == "AVX512"
    assert simd_level("CPU : SSE3 = 1 | AVX512 = 0 | ") == ""


def test_a_build_narrower_than_the_cpu_says_how_to_rebuild() -> None:
    assert build_note("AVX2", "AVX512") == ("AVX2 build; this CPU has AVX512: reinstall with "
                                            "CMAKE_ARGS=-DGGML_NATIVE=ON for its kernels")
    assert build_note("", "AVX2").startswith("generic build; this CPU has AVX2")
    assert build_note("AVX512", "AVX512") == "AVX512 build"
    assert build_note("AVX2", "") == "AVX2 build"  # a CPU torch cannot place: no advice made up
