"""Writes the safetensors fixtures that CheckpointsTests compares against, using the reference
implementation (pip install safetensors numpy ml_dtypes):

  tiny.safetensors            F32, F16 and BF16 tensors plus metadata. SafeTensors.write must
                              produce exactly these bytes from the float32 values listed in
                              tiny_expected.json ("source" bit patterns).
  tiny_expected.json          per tensor: dtype, shape, the float32 source bit patterns, and the
                              bit patterns numpy / ml_dtypes decode from the stored 16-bit values.
  mixed_dtypes.safetensors    integer, boolean and F64 tensors, for reading only.

Run from anywhere: python3 Tests/Fixtures/make_safetensors_fixture.py
"""
import json
import os

import ml_dtypes
import numpy as np
from safetensors import TensorSpec, serialize

HERE = os.path.dirname(os.path.abspath(__file__))

# Values chosen to exercise rounding: exact ones, ties, subnormals, overflow, signed zero.
F32_VALUES = np.array([0.0, 1.0, -2.5, 3.25, 1e-3, 65504.0], dtype=np.float32).reshape(2, 3)
F16_SOURCE = np.array([0.5, -1.0, 2048.0, 0.1, 1.0 / 3.0, 1e-6, 65519.0, 65520.0, -1e-8,
                       2049.0, 2051.0, float("inf"), -float("inf")], dtype=np.float32)
BF16_SOURCE = np.array([1.0, -0.15625, 0.1, 1.0 / 3.0, 3.14159265, 1e-40, 3.4e38, -0.0,
                        1.00390625, 1.01171875, float("inf")], dtype=np.float32)
SCALAR = np.array(7.5, dtype=np.float32)
EMPTY = np.zeros((0, 4), dtype=np.float32)

# name -> (float32 source, stored array, reference dtype name)
with np.errstate(over="ignore"):  # 65520 overflows float16 to inf on purpose
    F16_STORED = F16_SOURCE.astype(np.float16)
TINY = {
    "down_blocks.0.weight": (F32_VALUES, F32_VALUES, "float32"),
    "scale": (SCALAR, SCALAR, "float32"),
    "a.bias": (F16_SOURCE, F16_STORED, "float16"),
    "empty": (EMPTY, EMPTY.astype(np.float16), "float16"),
    "proj.lora_up": (BF16_SOURCE.reshape(11, 1), BF16_SOURCE.astype(ml_dtypes.bfloat16).reshape(11, 1), "bfloat16"),
}
# Keys in byte-wise sorted order, which is the order SafeTensors.write uses.
METADATA = {"format": "pt", "note": "tiny fixture \u2713 \"quoted\"\n"}

MIXED = {
    "ids": np.array([-3, 0, 2**40], dtype=np.int64),
    "counts": np.array([[1, -2], [3, 2147483647]], dtype=np.int32),
    "pixels": np.array([0, 128, 255], dtype=np.uint8),
    "mask": np.array([True, False, True], dtype=np.bool_),
    "precise": np.array([0.1, -1e300, 2.5], dtype=np.float64),
    "small": np.array([-128, 127], dtype=np.int8),
    "shorts": np.array([-32768, 1234], dtype=np.int16),
}


def save(arrays, dtype_names, metadata, path):
    specs = {
        name: TensorSpec(dtype=dtype_names[name], shape=list(array.shape),
                         data_ptr=array.ctypes.data, data_len=array.nbytes)
        for name, array in arrays.items()
    }
    with open(path, "wb") as file:
        file.write(bytes(serialize(specs, metadata=metadata)))


def bits32(array):
    return [int(v) for v in np.ascontiguousarray(array, dtype=np.float32).reshape(-1).view(np.uint32)]


def main():
    # copy, not ascontiguousarray: the latter turns the 0-d scalar into shape [1].
    stored = {name: entry[1].copy(order="C") for name, entry in TINY.items()}
    save(stored, {name: entry[2] for name, entry in TINY.items()}, METADATA,
         os.path.join(HERE, "tiny.safetensors"))
    expected = {
        "metadata": METADATA,
        "tensors": {
            name: {
                "dtype": {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[dtype],
                "shape": list(source.shape),
                "source": bits32(source),
                "decoded": bits32(stored[name].astype(np.float32)),
            }
            for name, (source, _, dtype) in TINY.items()
        },
    }
    with open(os.path.join(HERE, "tiny_expected.json"), "w") as file:
        json.dump(expected, file, indent=1, sort_keys=True)
        file.write("\n")

    save(MIXED, {name: array.dtype.name for name, array in MIXED.items()}, None,
         os.path.join(HERE, "mixed_dtypes.safetensors"))


if __name__ == "__main__":
    main()
