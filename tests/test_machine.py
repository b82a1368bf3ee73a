"""ncgrok.machine: the native-bfloat16 detection every benchmark line reports."""
from ncgrok.machine import BFLOAT16_FLAGS, describe, native_bfloat16

AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2\n"
SAPPHIRE = "model name\t: Intel Xeon\nflags\t\t: avx2 avx512f avx512bw avx512_bf16 amx_tile amx_bf16 amx_int8\n"
# a flag that merely contains the name must not count
LOOKALIKE = "flags\t\t: avx2 avx512_bf16x amx_bf16_lite\n"


def test_bfloat16_flags_are_read_from_the_flags_line():
    assert native_bfloat16(AVX2_ONLY) == ()
    assert native_bfloat16(SAPPHIRE) == BFLOAT16_FLAGS
    assert native_bfloat16("flags\t: avx512f avx512_bf16\n") == ("avx512_bf16",)
    assert native_bfloat16(LOOKALIKE) == ()
    assert native_bfloat16("") == ()


def test_describe_says_which():
    assert "native bfloat16: " in describe()
