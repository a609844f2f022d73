#!/usr/bin/python3
"""Converts a published PyTorch checkpoint into safetensors, the weight format Earmark reads.

Takes the `.pth`, `.pt` and `pytorch_model.bin` files the AST, PANNs and LAION-CLAP authors and
the Hugging Face hub publish: zip or legacy (non-zip) torch pickles, holding a state dict directly
(an OrderedDict) or inside a training checkpoint ({'model': ...}, {'state_dict': ...}) next to
counters, numpy scalars and optimiser state. Key names are kept as they are: Earmark's loaders know
the original and the Hugging Face names.

Unpickling runs code named by the file, so only what a checkpoint needs is let through (tensors,
storages, containers, numpy scalars and arrays); anything else is refused unless --trust is given.

Run it with Debian's Python, which has python3-torch:
    /usr/bin/python3 tools/convert_checkpoint.py Cnn14_mAP=0.431.pth cnn14.safetensors
"""

import argparse
import collections
import hashlib
import json
import os
import pickle
import struct
import sys


def fail(message):
    print(f"convert_checkpoint: {message}", file=sys.stderr)
    sys.exit(1)


try:
    import torch
except ImportError:
    fail("needs PyTorch: run it with Debian's /usr/bin/python3 after `apt install python3-torch`")

# What a checkpoint may name when it is unpickled: (module, name) pairs, and the storage classes.
ALLOWED = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.nn.parameter", "Parameter"),
    ("torch", "Tensor"),
    ("torch", "Size"),
    ("torch", "device"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
}


def allowed(module, name):
    if (module, name) in ALLOWED:
        return True
    # torch.FloatStorage, torch.LongStorage, ... and the dtypes storages are typed with.
    return module == "torch" and (name.endswith("Storage") or isinstance(getattr(torch, name, None), torch.dtype))


class Refused(pickle.UnpicklingError):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if not allowed(module, name):
            raise Refused(
                f"the file names {module}.{name}, which is not tensor data; refusing to run it "
                "(pass --trust if you trust where the file comes from)")
        return super().find_class(module, name)


class RestrictedPickle:
    """A pickle module for torch.load whose unpickler refuses code."""

    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(f, **kwargs):
        return RestrictedUnpickler(f, **kwargs).load()


def restricted_load(path):
    # torch 1.13's torch.load replaces any pickle_module by the `pickle` it imported unless
    # weights_only is set, and its weights_only unpickler refuses the numpy scalars PANNs
    # checkpoints hold. So the module torch.serialization unpickles with is swapped for the time
    # of the call; later versions take pickle_module as given.
    serialization = torch.serialization
    original = serialization.pickle
    serialization.pickle = RestrictedPickle
    try:
        return torch.load(path, map_location="cpu", pickle_module=RestrictedPickle)
    finally:
        serialization.pickle = original


def is_tensor_like(value):
    if isinstance(value, torch.Tensor):
        return True
    try:
        import numpy
    except ImportError:
        return False
    return isinstance(value, (numpy.ndarray, numpy.generic))


def tensor_count(mapping):
    return sum(1 for v in mapping.values() if is_tensor_like(v))


def find_state_dict(top, key):
    """The mapping of names to tensors inside a loaded checkpoint, and the key it was under."""
    if not isinstance(top, dict):
        fail(f"the file holds a {type(top).__name__}, not a state dict (was a whole model saved?)")
    if key:
        if key not in top:
            fail(f"no '{key}' in the checkpoint; it has: {', '.join(map(str, top.keys()))}")
        if not isinstance(top[key], dict):
            fail(f"'{key}' is a {type(top[key]).__name__}, not a state dict")
        return top[key], key
    if top and tensor_count(top) >= len(top) / 2:
        return top, ""
    for name in ("state_dict", "model", "model_state_dict", "module", "net", "weights"):
        inner = top.get(name)
        if isinstance(inner, dict) and tensor_count(inner) > 0:
            return inner, name
    fail("found no state dict; the checkpoint's keys are: " + ", ".join(map(str, top.keys())) +
         " (name the one that holds the weights with --key)")


DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def as_tensor(value):
    if isinstance(value, torch.Tensor):
        return value.detach()
    import numpy
    return torch.from_numpy(numpy.array(value))


def write_safetensors(path, tensors, metadata):
    """Writes (name, tensor) pairs in order; the file appears whole or not at all."""
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, t in tensors:
        t = t.contiguous().cpu()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    partial = path + ".partial"
    try:
        with open(partial, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for data in blobs:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except OSError as e:
        if os.path.exists(partial):
            os.remove(partial)
        fail(f"cannot write {path}: {e.strerror}")
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(
        description="Convert a PyTorch checkpoint (.pth, .pt, pytorch_model.bin) to safetensors.")
    parser.add_argument("checkpoint", help="the published checkpoint")
    parser.add_argument("output", nargs="?", help="the safetensors file to write")
    parser.add_argument("--key", help="the entry holding the state dict (found when not given)")
    parser.add_argument("--drop", action="append", default=[], metavar="PREFIX",
                        help="leave out keys starting with PREFIX (repeatable), e.g. "
                             "module.text_branch. to keep CLAP's audio side only")
    parser.add_argument("--keep-dtypes", action="store_true",
                        help="keep float16/bfloat16/float64 as they are (default: float32, which "
                             "Earmark's models compute in)")
    parser.add_argument("--list", action="store_true", help="print the keys and shapes, write nothing")
    parser.add_argument("--trust", action="store_true",
                        help="unpickle anything the file names (runs its code: trusted files only)")
    args = parser.parse_args()
    if not args.list and not args.output:
        parser.error("the output path is needed (or --list)")
    if not os.path.isfile(args.checkpoint):
        fail(f"{args.checkpoint}: no such file")
    if os.path.getsize(args.checkpoint) == 0:
        fail(f"{args.checkpoint}: the file is empty")

    print(f"convert_checkpoint: reading {args.checkpoint}", file=sys.stderr)
    try:
        if args.trust:
            # weights_only=False: PyTorch 2.6 and later default to True, which refuses numpy.
            top = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        else:
            top = restricted_load(args.checkpoint)
    except Refused as e:
        fail(f"{args.checkpoint}: {e}")
    except Exception as e:  # torch raises RuntimeError, EOFError, zipfile errors, ...
        fail(f"{args.checkpoint}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})")

    state, key = find_state_dict(top, args.key)
    tensors, skipped, converted = [], [], []
    for name, value in state.items():
        name = str(name)
        if any(name.startswith(p) for p in args.drop):
            continue
        if not is_tensor_like(value):
            skipped.append(name)
            continue
        t = as_tensor(value)
        if t.dtype not in DTYPES:
            fail(f"{name} has dtype {t.dtype}, which safetensors cannot hold here")
        if not args.keep_dtypes and t.is_floating_point() and t.dtype != torch.float32:
            converted.append(f"{name} ({t.dtype})")
            t = t.to(torch.float32)
        tensors.append((name, t))
    if not tensors:
        fail("the state dict holds no tensors" + (" after --drop" if args.drop else ""))

    if args.list:
        for name, t in tensors:
            print(f"{name}\t{DTYPES[t.dtype]}\t{list(t.shape)}")
        return
    if skipped:
        print(f"convert_checkpoint: skipped {len(skipped)} entries that are not tensors: "
              f"{', '.join(skipped[:5])}", file=sys.stderr)
    if converted:
        print(f"convert_checkpoint: {len(converted)} tensors converted to float32, e.g. "
              f"{converted[0]}", file=sys.stderr)
    metadata = {
        "source": os.path.basename(args.checkpoint),
        "source_sha256": sha256_of(args.checkpoint),
        "converted_by": "earmark tools/convert_checkpoint.py",
        "state_dict_key": key,
    }
    write_safetensors(args.output, tensors, metadata)
    values = sum(t.numel() for _, t in tensors)
    print(f"convert_checkpoint: wrote {args.output}: {len(tensors)} tensors, {values:,} values",
          file=sys.stderr)


if __name__ == "__main__":
    main()
